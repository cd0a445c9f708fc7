package pgcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseInterlock removes the System V shared memory segment that the
// postmaster of dataDir created as its interlock (postmaster.pid names it).
// Call it only once that postmaster has exited. PostgreSQL removes the
// segment, and postmaster.pid, when it shuts down; a killed postmaster
// leaves both, and the kernel keeps the segment (a few bytes, and one of
// kernel.shmmni's 4,096 ids) until reboot. Backends of the killed
// postmaster that are still attached keep it until they exit, and the
// kernel removes it then. Missing, the file names nothing and there is
// nothing to do; a segment that has gone, or whose key no longer matches
// (its id was given out again), is left alone.
func releaseInterlock(dataDir string) error {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read postmaster.pid: %w", err)
	}
	// Line 7: the segment's key and id, as "%9lu %9lu".
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return nil
	}
	fields := strings.Fields(lines[6])
	if len(fields) != 2 {
		return nil
	}
	key, err1 := strconv.ParseInt(fields[0], 10, 64)
	id, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil {
		return nil
	}
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		return nil // gone
	}
	if uint32(desc.Perm.Key) != uint32(key) {
		return nil
	}
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		return fmt.Errorf("remove the postmaster's shared memory segment %d: %w", id, err)
	}
	return nil
}
