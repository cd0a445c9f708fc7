package commalist

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSplit: list settings (token patterns, CORS origins, trusted
// proxies) are split at commas, with each item trimmed and blanks dropped.
func TestSplit(t *testing.T) {
	t.Parallel()
	require.Nil(t, Split(""))
	require.Nil(t, Split(" , ,"))
	require.Equal(t, []string{"a"}, Split("a"))
	require.Equal(t, []string{"10.0.0.0/8", "192.168.1.1", "fd00::/8", "::ffff:172.16.0.0/108"},
		Split(" 10.0.0.0/8, 192.168.1.1 ,fd00::/8,,::ffff:172.16.0.0/108"))
	require.Equal(t, []string{"https://App.example.com:443", "http://localhost:3000"},
		Split(" https://App.example.com:443 , http://localhost:3000"))
}
