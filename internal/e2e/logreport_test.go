package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/childproc"
)

// How much of a server's log a failure report shows: CI cuts long output
// in the middle, and the end of a log says why the process ended.
const (
	logTailLines = 80
	logLineBytes = 400 // a longer line is cut
)

var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*m")

// logReport returns the last n lines of a process log, each cut to
// logLineBytes, then, in full, every race-detector report and the panic
// (or fatal runtime error) that began before those lines: what says why a
// process failed comes last.
func logReport(log string, n int) string {
	lines := strings.Split(strings.TrimRight(ansiEscape.ReplaceAllString(log, ""), "\n"), "\n")
	from := max(len(lines)-n, 0)
	var b strings.Builder
	fmt.Fprintf(&b, "%d lines, the last %d:\n", len(lines), len(lines)-from)
	for _, l := range lines[from:] {
		if len(l) > logLineBytes {
			l = l[:logLineBytes] + " [cut]"
		}
		b.WriteString(l + "\n")
	}
	for _, blk := range failureBlocks(lines) {
		if blk.start >= from {
			continue // shown above
		}
		fmt.Fprintf(&b, "--- %s, from line %d, in full:\n%s\n", blk.what, blk.start+1, strings.Join(lines[blk.start:blk.end], "\n"))
	}
	return b.String()
}

// logBlock is lines[start:end] of a log.
type logBlock struct {
	what       string
	start, end int
}

// failureBlocks finds the race detector's reports (a "WARNING: DATA RACE"
// line to the next "==================" line) and a Go panic or fatal error
// (its first line to the end of the log, as the runtime prints the
// goroutines and exits).
func failureBlocks(lines []string) []logBlock {
	var out []logBlock
	for i := 0; i < len(lines); i++ {
		switch l := lines[i]; {
		case strings.HasPrefix(l, "WARNING: DATA RACE"):
			end := i + 1
			for end < len(lines) && !strings.HasPrefix(lines[end], "==================") {
				end++
			}
			out = append(out, logBlock{"DATA RACE", i, end})
			i = end
		case strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: "):
			return append(out, logBlock{strings.TrimSuffix(strings.Fields(l)[0], ":"), i, len(lines)})
		}
	}
	return out
}

func TestLogReport(t *testing.T) {
	var log []string
	log = append(log, "start", "==================", "WARNING: DATA RACE", "Write at 0x1 by goroutine 7:", "  main.f()", "==================")
	for i := range 100 {
		log = append(log, fmt.Sprintf("\x1b[33mline %d\x1b[0m", i))
	}
	log = append(log, strings.Repeat("x", logLineBytes+10))
	r := logReport(strings.Join(log, "\n")+"\n", 5)
	require.True(t, strings.HasPrefix(r, "107 lines, the last 5:\nline 96\n"), r)
	require.Contains(t, r, "line 99\n"+strings.Repeat("x", logLineBytes)+" [cut]\n")
	require.NotContains(t, r, "line 95")
	require.NotContains(t, r, "\x1b[")
	require.True(t, strings.HasSuffix(r, "--- DATA RACE, from line 3, in full:\nWARNING: DATA RACE\nWrite at 0x1 by goroutine 7:\n  main.f()\n"), r)

	// A panic runs to the end of the log; a block inside the tail is not
	// repeated.
	log = []string{"a", "panic: runtime error: invalid memory address", "", "goroutine 1 [running]:", "main.g()", "exit status 2"}
	r = logReport(strings.Join(log, "\n"), 3)
	require.True(t, strings.HasSuffix(r, "--- panic, from line 2, in full:\npanic: runtime error: invalid memory address\n\ngoroutine 1 [running]:\nmain.g()\nexit status 2\n"), r)
	r = logReport(strings.Join(log, "\n"), 10)
	require.NotContains(t, r, "in full")
}

// A server that dies on its own is reported with its log's end and, last,
// how it ended.
func TestExitReport(t *testing.T) {
	t.Parallel()
	d := &deployment{t: t, addr: "127.0.0.1:1", logs: &logBuffer{}}
	cmd := exec.Command("sh", "-c", `echo started; echo "panic: boom"; echo "goroutine 1 [running]:"; kill -9 $$`)
	cmd.Stdout, cmd.Stderr = d.logs, d.logs
	p, err := childproc.Start(cmd)
	require.NoError(t, err)
	<-p.Done()
	r := d.exitReport(p)
	require.True(t, strings.HasSuffix(r, fmt.Sprintf("\nserver 127.0.0.1:1 (pid %d) exited: signal: killed", p.Pid)), r)
	require.Contains(t, r, "started\npanic: boom\ngoroutine 1 [running]:\n")
	require.True(t, d.logShown)
}
