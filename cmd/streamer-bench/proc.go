package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTick is USER_HZ, the unit of the CPU times in /proc/<pid>/stat; it is
// 100 on every Linux build that matters.
const clockTick = 100

// procCPU returns the user+system CPU seconds of a process; with children
// set, also those of its waited-for children (cutime, cstime).
func procCPU(pid int, children bool) (float64, error) {
	f, err := procStatFields(pid)
	if err != nil {
		return 0, err
	}
	// Fields after the command: state(3) ppid(4) ... utime(14) stime(15)
	// cutime(16) cstime(17); f[0] is field 3.
	sum := 0.0
	idx := []int{14, 15}
	if children {
		idx = append(idx, 16, 17)
	}
	for _, i := range idx {
		v, err := strconv.ParseFloat(f[i-3], 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat field %d: %w", pid, i, err)
		}
		sum += v
	}
	return sum / clockTick, nil
}

// procStatFields returns the fields of /proc/<pid>/stat from the third
// (state) on; the command, which may hold spaces, is skipped.
func procStatFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	f, err := statFields(b)
	if err != nil {
		return nil, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return f, nil
}

// memory is a process's resident memory, in KiB, from /proc/<pid>/status.
type memory struct {
	RSS, Anon, File, HWM int64
}

func procMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var p *int64
		switch name {
		case "VmRSS":
			p = &m.RSS
		case "RssAnon":
			p = &m.Anon
		case "RssFile":
			p = &m.File
		case "VmHWM":
			p = &m.HWM
		default:
			continue
		}
		*p, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
	}
	return m, nil
}

// loadAvg returns the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// clusterCPU returns the CPU seconds of a PostgreSQL cluster: the
// postmaster's, including its exited children, plus every live child's
// (see clusterTicks).
func clusterCPU(postmaster int) (float64, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	procs := make([]procStat, 0, len(dirs))
	found := false
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue // exited meanwhile: its time is in its parent's cutime
		}
		p, err := parseProcStat(b)
		if err != nil {
			continue // not a format the kernel writes; not one of the cluster's
		}
		found = found || p.pid == postmaster
		procs = append(procs, p)
	}
	if !found {
		return 0, fmt.Errorf("postmaster %d is gone", postmaster)
	}
	return float64(clusterTicks(postmaster, procs)) / clockTick, nil
}

// parentPID returns a process's parent.
func parentPID(pid int) (int, error) {
	f, err := procStatFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// machineBusy returns the CPU seconds the whole machine has spent busy
// (every state but idle and iowait), from /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	busy := 0.0
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return busy / clockTick
}
