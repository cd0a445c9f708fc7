package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// procStat is what the tool reads from a /proc/<pid>/stat line: the process,
// its parent and its CPU times in clock ticks (clockTick a second).
type procStat struct {
	pid, ppid      int
	utime, stime   int64 // the process's own user and system time
	cutime, cstime int64 // its waited-for (exited and reaped) children's
}

// statFields returns the fields of a /proc/<pid>/stat line from the third
// (state) on. The command (field 2, in parentheses) may hold spaces and
// parentheses itself, so it ends at the last ')'.
func statFields(b []byte) ([]string, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("no command")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("%d fields after the command, want at least 15", len(f))
	}
	return f, nil
}

// parseProcStat parses a /proc/<pid>/stat line.
func parseProcStat(b []byte) (procStat, error) {
	var s procStat
	pid, _, ok := bytes.Cut(b, []byte(" ("))
	if !ok {
		return s, fmt.Errorf("no pid")
	}
	var err error
	if s.pid, err = strconv.Atoi(string(pid)); err != nil {
		return s, fmt.Errorf("pid: %w", err)
	}
	f, err := statFields(b)
	if err != nil {
		return s, err
	}
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
	if s.ppid, err = strconv.Atoi(f[4-3]); err != nil {
		return s, fmt.Errorf("ppid: %w", err)
	}
	for i, p := range []*int64{&s.utime, &s.stime, &s.cutime, &s.cstime} {
		if *p, err = strconv.ParseInt(f[14-3+i], 10, 64); err != nil {
			return s, fmt.Errorf("field %d: %w", 14+i, err)
		}
	}
	return s, nil
}

// clusterTicks is the CPU time of a PostgreSQL cluster, in clock ticks,
// from the stat of every process on the machine: the postmaster's own and
// its reaped children's (backends and workers that have exited), plus each
// live child's own and its reaped children's (an archive_command, say).
// Every process of a cluster is a child of its postmaster; processes of
// other clusters and other programs are left out. With no postmaster in
// procs it is 0.
func clusterTicks(postmaster int, procs []procStat) int64 {
	var total int64
	for _, p := range procs {
		if p.pid == postmaster || p.ppid == postmaster {
			total += p.utime + p.stime + p.cutime + p.cstime
		}
	}
	return total
}
