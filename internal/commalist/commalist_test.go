package commalist

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSplit: list settings (token patterns, CORS origins, trusted
// proxies) are split at commas, with each item trimmed and blanks dropped.
func TestSplit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,", nil},
		{"a", []string{"a"}},
		{" 10.0.0.0/8, 192.168.1.1 ,fd00::/8,,::ffff:172.16.0.0/108", []string{"10.0.0.0/8", "192.168.1.1", "fd00::/8", "::ffff:172.16.0.0/108"}},
		{" https://App.example.com:443 , http://localhost:3000", []string{"https://App.example.com:443", "http://localhost:3000"}},
	} {
		require.Equal(t, tc.want, Split(tc.in), "%q", tc.in)
	}
}
