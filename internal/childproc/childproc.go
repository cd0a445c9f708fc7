package childproc

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
)

// Process is a child started by [Start].
type Process struct {
	// Pid is the child's process id.
	Pid  int
	done chan struct{}
	err  error // written once, before done is closed
	tid  int   // the thread that forked the child (for the tests)
}

// Start starts cmd with a parent-death signal, from an OS thread that lives
// at least as long as the child (see the package documentation). The child
// is waited for in the background: use [Process.Done] and [Process.Err],
// never cmd.Wait.
func Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	setParentDeathSignal(cmd.SysProcAttr)
	p := &Process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Unlocked, not ended: ending the thread would kill every child
		// forked from it before this goroutine got it.
		defer runtime.UnlockOSThread()
		p.tid = gettid()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.Pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	return p, nil
}

// Done is closed once the child has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the child's exit status (as exec.Cmd.Wait returns it) once Done
// is closed; nil before.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}
