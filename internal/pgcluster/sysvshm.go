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
	key, id, ok, err := interlock(dataDir)
	if err != nil || !ok {
		return err
	}
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
		return nil // gone
	}
	if uint32(desc.Perm.Key) != key {
		return nil
	}
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		return fmt.Errorf("remove the postmaster's shared memory segment %d: %w", id, err)
	}
	return nil
}

// interlock returns the key and id of the System V segment that
// postmaster.pid in dataDir names (its line 7, "%9lu %9lu"); ok is false
// when there is no such file or it names none.
func interlock(dataDir string) (key uint32, id int, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("read postmaster.pid: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return 0, 0, false, nil
	}
	fields := strings.Fields(lines[6])
	if len(fields) != 2 {
		return 0, 0, false, nil
	}
	k, err1 := strconv.ParseUint(fields[0], 10, 32)
	id, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil {
		return 0, 0, false, nil
	}
	return uint32(k), id, true, nil
}
