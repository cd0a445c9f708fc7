package scripts

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/testenv"
)

// commandTimeout bounds each run of the script; a first start runs initdb.
const commandTimeout = 2 * time.Minute

// TestDevDBFromAnywhere copies devdb.sh into a new checkout in each kind of
// place a new user clones to, and there starts the dev database, connects to
// it, and stops and deletes it. The script finds everything relative to
// itself, so it alone makes a checkout for it.
func TestDevDBFromAnywhere(t *testing.T) {
	if _, err := exec.LookPath("pg_ctl"); err != nil {
		if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl"); len(m) == 0 {
			testenv.Unavailable(t, "no PostgreSQL server binaries (scripts/ensure-deps.sh installs them)")
		}
	}
	script, err := filepath.Abs("devdb.sh")
	require.NoError(t, err)

	type place struct {
		name    string
		parent  string      // where the test's directory is made
		mode    os.FileMode // of that directory
		sub     string      // the checkout, below it
		outside bool        // the cluster cannot live in the checkout
	}
	cases := []place{
		{"InTmp", "/tmp", 0o755, "streamer", false},
		{"PathWithSpaces", "/tmp", 0o755, "my checkout/of streamer", false},
	}
	if os.Geteuid() == 0 {
		// The postgres user the cluster runs as cannot enter a 0700 home.
		cases = append(cases, place{"UnderRootsHome", "/root", 0o700, "streamer", true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base, err := os.MkdirTemp(tc.parent, "devdb-test-")
			require.NoError(t, err)
			require.NoError(t, os.Chmod(base, tc.mode))
			checkout := filepath.Join(base, tc.sub)
			require.NoError(t, os.MkdirAll(filepath.Join(checkout, "scripts"), 0o755))
			copyFile(t, script, filepath.Join(checkout, "scripts", "devdb.sh"))

			devdb := func(cmd string) string {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
				defer cancel()
				c := exec.CommandContext(ctx, "bash", filepath.Join(checkout, "scripts", "devdb.sh"), cmd)
				c.Dir = checkout
				out, err := c.CombinedOutput()
				require.NoError(t, err, "devdb.sh %s:\n%s", cmd, out)
				return string(out)
			}
			t.Cleanup(func() {
				devdb("clean")
				require.NoError(t, os.RemoveAll(base))
			})

			out := devdb("start")
			t.Log(out)
			where := strings.TrimSpace(devdb("where"))
			require.Contains(t, out, "devdb: the cluster lives in "+where, "start says where the data lives")
			require.NotContains(t, out, "chmod", "never advises loosening a permission")
			if tc.outside {
				require.True(t, strings.HasPrefix(where, "/var/tmp/streamer-devdb-"), where)
				require.Contains(t, out, "outside the checkout")
			} else {
				require.Equal(t, filepath.Join(checkout, ".data"), where)
			}

			// As a user would: psql, on the URL the script prints.
			ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
			defer cancel()
			psql := exec.CommandContext(ctx, "psql", "-X", "-A", "-t", "-d", strings.TrimSpace(devdb("url")), "-c", "SELECT 1")
			one, err := psql.CombinedOutput()
			require.NoError(t, err, "psql: %s", one)
			require.Equal(t, "1", strings.TrimSpace(string(one)))

			require.Contains(t, devdb("start"), "already running")
			require.Contains(t, devdb("stop"), "devdb: stopped")
			require.Contains(t, devdb("clean"), "devdb: deleted "+where)
			require.NoDirExists(t, where)
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, errors.Join(err, dst.Close()))
}
