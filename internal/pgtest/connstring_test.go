package pgtest

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestWithDatabase(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name, in, want string
	}{
		{"URL", "postgres://u:p@localhost:5432/postgres?sslmode=disable", "postgres://u:p@localhost:5432/pgtest_x_1?sslmode=disable"},
		{"URLWithoutDatabase", "postgresql://u@db", "postgresql://u@db/pgtest_x_1"},
		{"URLWithDbnameParameter", "postgres://u@/?host=%2Ftmp%2Frun&dbname=postgres", "postgres://u@/pgtest_x_1?host=%2Ftmp%2Frun"},
		{"UnixSocketURL", "postgres://postgres@/postgres?host=%2Ftmp%2Fpgtest-1%2Frun&port=5432", "postgres://postgres@/pgtest_x_1?host=%2Ftmp%2Fpgtest-1%2Frun&port=5432"},
		{"KeywordValue", "host=localhost dbname=postgres user=u", "host=localhost dbname=postgres user=u dbname='pgtest_x_1'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := withDatabase(tt.in, "pgtest_x_1")
			require.NoError(t, err)
			require.Equal(t, tt.want, got)

			cfg, err := pgx.ParseConfig(got)
			require.NoError(t, err)
			require.Equal(t, "pgtest_x_1", cfg.Database)
		})
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()

	require.Equal(t, []int{15}, parseVersion("15"))
	require.Equal(t, []int{9, 6}, parseVersion("9.6"))
	require.Nil(t, parseVersion("devel"))
}
