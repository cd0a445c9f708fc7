package nginxconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSite: each text is replaced where it stands once; one that stands
// twice or not at all fails the whole.
func TestSite(t *testing.T) {
	t.Parallel()
	site := "listen 80;\nserver 127.0.0.1:8081;\nserver 127.0.0.1:8082;\n"
	got, err := Site(site, [][2]string{{"listen 80;", "listen 127.0.0.1:9;"}, {"8082;", "9999;"}})
	require.NoError(t, err)
	require.Equal(t, "listen 127.0.0.1:9;\nserver 127.0.0.1:8081;\nserver 127.0.0.1:9999;\n", got)

	_, err = Site(site, [][2]string{{"server 127.0.0.1", "x"}})
	require.ErrorContains(t, err, `"server 127.0.0.1" exactly once`)
	_, err = Site(site, [][2]string{{"listen 443", "x"}})
	require.ErrorContains(t, err, `"listen 443" exactly once`)
}

// TestMainConfig: the settings land in the text, every path nginx writes
// is inside Dir, and Command writes both files.
func TestMainConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := Main{Dir: dir, Comment: "generated", Workers: "auto", RlimitNofile: 20000, WorkerConnections: 10000, ErrorLogLevel: "warn", HTTPExtra: "    add_header X 1;"}
	text := m.String()
	for _, want := range []string{
		"# generated\n", "worker_processes auto;\n", "worker_rlimit_nofile 20000;\n",
		"events { worker_connections 10000; }\n", "error_log " + dir + "/error.log warn;\n",
		"    add_header X 1;\n", "    include " + dir + "/streamer.conf;\n",
	} {
		require.Contains(t, text, want)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				require.True(t, strings.HasPrefix(f, dir+"/"), "a path outside Dir: %q", line)
			}
		}
	}
	m.RlimitNofile, m.Comment = 0, ""
	require.NotContains(t, m.String(), "worker_rlimit_nofile")
	require.False(t, strings.HasPrefix(m.String(), "#"))

	cmd, err := m.Command("/usr/sbin/nginx", "site text")
	require.NoError(t, err)
	site, err := os.ReadFile(filepath.Join(dir, SiteFile))
	require.NoError(t, err)
	require.Equal(t, "site text", string(site))
	main, err := os.ReadFile(filepath.Join(dir, "nginx.conf"))
	require.NoError(t, err)
	require.Equal(t, m.String(), string(main))
	require.Equal(t, []string{"/usr/sbin/nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf")}, cmd.Args)
}
