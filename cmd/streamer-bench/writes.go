package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// procWrites returns the write system calls pid has made: syscw of
// /proc/<pid>/io, which counts write(2), writev(2) and their kin (every
// write on a socket from Go's net package), not send(2)/sendmsg(2). The
// server writes each frame batch to a socket with one of them, so over a
// window they count the socket writes its deliveries took (plus a few log
// lines and database messages).
func procWrites(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	return parseSyscw(b)
}

// parseSyscw returns the syscw field of a /proc/<pid>/io file.
func parseSyscw(b []byte) (int64, error) {
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("syscw:")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, fmt.Errorf("no syscw line")
}

// writes returns the write system calls of the server under test (the
// upstreams' together when t is a proxy); 0 when they cannot be read.
func (t *target) writes() int64 {
	if len(t.upstreams) == 0 {
		n, _ := procWrites(t.pid)
		return n
	}
	var n int64
	for _, u := range t.upstreams {
		w, _ := procWrites(u.pid)
		n += w
	}
	return n
}
