package sse

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ id, want string }{
		{"17.42", "id: 17.42\n\n"},
		{"17", "id: 17\n\n"},
		{"1.2\r\ndata: injected", "id: 1.2\n\n"},
		{"1.2\ndata: injected", "id: 1.2\n\n"},
	} {
		require.Equal(t, tc.want, string(AppendID([]byte(nil), tc.id)), "id %q", tc.id)
	}
	require.Equal(t, ": x\nid: 5\n\n", string(AppendID([]byte(": x\n"), "5")), "appends")
}
