package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ownerFile holds the pid of the process that started the cluster, in the
// cluster's directory.
const ownerFile = "owner.pid"

// dirPrefix begins the name of every cluster directory.
const dirPrefix = "pgtest-"

// parents are where a cluster's directory may go, best first. tmpfs comes
// first: CREATE DATABASE writes some 300 files, which takes a few hundred
// milliseconds on a busy disk and a few tens on tmpfs.
var parents = []struct {
	dir     string
	minFree uint64 // bytes; Docker's default 64 MB /dev/shm is too small
}{
	{"/dev/shm", 2 << 30},
	{os.TempDir(), 256 << 20},
	{"/tmp", 0},
}

// makeClusterDir creates the cluster's directory, owned by the user the
// server runs as, in the first of parents where the socket path fits, (as
// root) the postgres user can reach it, and there is room.
func makeClusterDir(cred *syscall.Credential) (string, error) {
	for _, p := range parents {
		removeAbandoned(p.dir)
	}
	var errs []error
	for _, p := range parents {
		if !usableParent(p.dir, p.minFree, cred) {
			continue
		}
		dir, err := os.MkdirTemp(p.dir, dirPrefix)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
		if err == nil && cred != nil {
			err = os.Chown(dir, int(cred.Uid), int(cred.Gid))
		}
		if err != nil {
			return "", errors.Join(err, os.RemoveAll(dir))
		}
		return dir, nil
	}
	return "", fmt.Errorf("no directory for a throwaway cluster: %w", errors.Join(errs...))
}

func usableParent(dir string, minFree uint64, cred *syscall.Credential) bool {
	// MkdirTemp adds up to 10 digits to the prefix; then "/run".
	if len(dir)+len("/"+dirPrefix+"0123456789/run")+len(socketFile) > 107 {
		return false
	}
	if cred != nil && !othersCanTraverse(dir) {
		return false
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Bavail*uint64(st.Bsize) >= minFree
}

// removeAbandoned removes the cluster directories under parent whose
// process died without stopping its cluster (killed, or a go test -timeout
// panic). Their postgres died with them (Pdeathsig). A directory whose owner
// is alive, or that has no owner file, is left alone.
func removeAbandoned(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = releaseInterlock(filepath.Join(dir, "data"))
			_ = os.RemoveAll(dir)
		}
	}
}

// othersCanTraverse reports whether every directory from / down to dir is
// searchable by users other than its owner and group.
func othersCanTraverse(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}
