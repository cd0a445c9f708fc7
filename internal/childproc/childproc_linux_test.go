package childproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamer-dev/streamer/internal/testsignal"
)

// threadAlive reports whether this process still has the OS thread tid.
func threadAlive(tid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid))
	return err == nil
}

// stopChild ends p with SIGTERM and returns its exit status.
func stopChild(t *testing.T, p *Process) error {
	t.Helper()
	require.NoError(t, syscall.Kill(p.Pid, syscall.SIGTERM))
	testsignal.Receive(t, p.Done(), 10*time.Second, "child did not exit after SIGTERM")
	return p.Err()
}

// The bug this package exists for: a goroutine locked to its thread starts
// a child and returns, so the runtime ends that thread. A child forked from
// that thread with a parent-death signal would get SIGKILL then; Start's
// child must not, whichever thread called it.
func TestChildOutlivesTheCallersThread(t *testing.T) {
	var (
		p   *Process
		tid int
	)
	for p == nil {
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
			tid = syscall.Gettid()
			if tid == os.Getpid() {
				// The main thread is never ended, only parked: try again.
				runtime.UnlockOSThread()
				errc <- nil
				return
			}
			var err error
			p, err = Start(exec.Command("sleep", "60"))
			errc <- err
		}()
		require.NoError(t, <-errc)
	}
	require.Eventually(t, func() bool { return !threadAlive(tid) }, 10*time.Second, time.Millisecond,
		"the calling goroutine's locked thread %d was not ended", tid)
	// A parent-death signal is sent as the thread exits, before it leaves
	// /proc: a SIGKILL would already be pending, and would win over this
	// SIGTERM.
	var exit *exec.ExitError
	require.ErrorAs(t, stopChild(t, p), &exit)
	require.Equal(t, syscall.SIGTERM, exit.Sys().(syscall.WaitStatus).Signal(),
		"the child died of %v, not of the SIGTERM: it was killed when the caller's thread ended", exit)
}

// Start hands its thread back to the runtime once the child has exited,
// instead of ending it (which would kill any child forked from the thread
// before Start's goroutine was locked to it).
func TestThreadOutlivesTheChild(t *testing.T) {
	p, err := Start(exec.Command("true"))
	require.NoError(t, err)
	<-p.Done()
	require.NoError(t, p.Err())
	if p.tid == os.Getpid() {
		t.Skip("forked from the main thread, which the runtime never ends")
	}
	// Ending a thread takes microseconds once its goroutine has returned:
	// watch for a second.
	require.Never(t, func() bool { return !threadAlive(p.tid) }, time.Second, time.Millisecond,
		"the thread that forked the child (%d) was ended", p.tid)
}

// Start keeps what cmd.SysProcAttr already asks for.
func TestKeepsSysProcAttr(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := Start(cmd)
	require.NoError(t, err)
	require.Nil(t, p.Err(), "Err before Done")
	pgid, err := syscall.Getpgid(p.Pid)
	require.NoError(t, err)
	require.Equal(t, p.Pid, pgid, "Setpgid was dropped")
	require.Equal(t, syscall.SIGKILL, cmd.SysProcAttr.Pdeathsig)
	var exit *exec.ExitError
	require.True(t, errors.As(stopChild(t, p), &exit))
}

func TestStartError(t *testing.T) {
	_, err := Start(exec.Command("/nonexistent/childproc-test"))
	require.ErrorContains(t, err, "start /nonexistent/childproc-test")
}
