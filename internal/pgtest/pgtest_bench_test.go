package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

// BenchmarkNewDB measures cloning the template and dropping the clone.
func BenchmarkNewDB(b *testing.B) {
	ctx := context.Background()
	admin := pgtest.Admin(b) // set the server up outside the measurement
	for b.Loop() {
		cfg, err := pgx.ParseConfig(pgtest.NewDB(b))
		require.NoError(b, err)
		// Drop now rather than at cleanup, so that clones do not pile up;
		// the cleanup's DROP DATABASE IF EXISTS then does nothing.
		_, err = admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{cfg.Database}.Sanitize()+" WITH (FORCE)")
		require.NoError(b, err)
	}
}
