package nginxconf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SiteFile is the name of the site's file in Main.Dir.
const SiteFile = "streamer.conf"

// Site returns site (the text of docs/nginx.conf) with, for each pair of
// replacements, the first text replaced by the second. Each first text must
// stand in site exactly once.
func Site(site string, replacements [][2]string) (string, error) {
	for _, r := range replacements {
		if strings.Count(site, r[0]) != 1 {
			return "", fmt.Errorf("must hold %q exactly once: it is replaced", r[0])
		}
		site = strings.Replace(site, r[0], r[1], 1)
	}
	return site, nil
}

// Main is nginx's main configuration (nginx -c): the site inside an http
// block with Debian's defaults (gzip on among them).
type Main struct {
	Dir               string // where nginx writes everything, and where the site is
	Comment           string // a first line, as a comment; none when ""
	Workers           string // worker_processes: "auto" or a count
	RlimitNofile      int    // worker_rlimit_nofile; left out when 0
	WorkerConnections int    // events' worker_connections
	ErrorLogLevel     string // error_log's level: "info", "warn"…
	HTTPExtra         string // more directives for the http block, before the site
}

// String returns the configuration's text.
func (m Main) String() string {
	var b strings.Builder
	if m.Comment != "" {
		fmt.Fprintf(&b, "# %s\n", m.Comment)
	}
	fmt.Fprintf(&b, "daemon off;\nworker_processes %s;\n", m.Workers)
	if m.RlimitNofile > 0 {
		fmt.Fprintf(&b, "worker_rlimit_nofile %d;\n", m.RlimitNofile)
	}
	if os.Geteuid() == 0 {
		// Workers would run as nobody, who cannot enter Dir.
		b.WriteString("user root;\n")
	}
	fmt.Fprintf(&b, `pid %[1]s/nginx.pid;
error_log %[1]s/error.log %[2]s;
events { worker_connections %[3]d; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;

    # Debian's /etc/nginx/nginx.conf
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    default_type application/octet-stream;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    gzip on;
%[4]s
    include %[1]s/%[5]s;
}
`, m.Dir, m.ErrorLogLevel, m.WorkerConnections, m.HTTPExtra, SiteFile)
	return b.String()
}

// Command writes site as Dir/SiteFile and the main configuration as
// Dir/nginx.conf, and returns the command that runs bin on them in the
// foreground, its error log Dir/error.log. The caller starts it.
func (m Main) Command(bin, site string) (*exec.Cmd, error) {
	if err := os.WriteFile(filepath.Join(m.Dir, SiteFile), []byte(site), 0o600); err != nil {
		return nil, fmt.Errorf("write the nginx site: %w", err)
	}
	mainFile := filepath.Join(m.Dir, "nginx.conf")
	if err := os.WriteFile(mainFile, []byte(m.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write the nginx configuration: %w", err)
	}
	return exec.Command(bin, "-p", m.Dir, "-e", filepath.Join(m.Dir, "error.log"), "-c", mainFile), nil
}
