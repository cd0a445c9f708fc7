package pgcluster

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// UnavailableError means no cluster could be started because something is
// missing (as opposed to a server that failed). Callers that look elsewhere
// first may add their own reasons.
type UnavailableError struct {
	Reasons []string
}

func (e *UnavailableError) Error() string {
	msg := "no PostgreSQL server available"
	for _, r := range e.Reasons {
		msg += "; " + r
	}
	return msg
}

// findBinDir returns a directory holding both postgres and initdb: the
// highest version under /usr/lib/postgresql (Debian's layout), else
// pg_config --bindir, else the one on PATH.
func findBinDir() (string, error) {
	var best string
	var bestVersion []int
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	for _, m := range matches {
		dir := filepath.Dir(m)
		v := ParseVersion(filepath.Base(filepath.Dir(dir)))
		if hasServer(dir) && (best == "" || slices.Compare(v, bestVersion) > 0) {
			best, bestVersion = dir, v
		}
	}
	if best != "" {
		return best, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasServer(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil && hasServer(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", &UnavailableError{Reasons: []string{
		"no PostgreSQL server binaries in /usr/lib/postgresql/*/bin, pg_config --bindir or PATH" +
			" (run scripts/ensure-deps.sh, or apt-get install postgresql)",
	}}
}

func hasServer(dir string) bool {
	for _, name := range []string{"postgres", "initdb"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// ParseVersion turns a version directory's name, "15" or "9.6", into
// numbers that compare with slices.Compare; nil when it is not a version.
func ParseVersion(s string) []int {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}

// postgresCredential returns the identity to run the server as: nil (this
// process's) unless running as root, which initdb and postgres refuse.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, &UnavailableError{Reasons: []string{
			"running as root, and there is no postgres OS user to run PostgreSQL as: " + err.Error(),
		}}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user's uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user's gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
