// Package childproc starts a child process that is killed when this process
// dies (a parent-death signal, on Linux), and by nothing else.
//
// # Why
//
// Linux ties PR_SET_PDEATHSIG to the THREAD that forked the child, not to
// the process: the child is killed when that OS thread exits. Go's runtime
// ends an OS thread when a goroutine locked to it (runtime.LockOSThread)
// returns without unlocking, and a goroutine may run on a thread that
// earlier forked some other child. So a child started with a parent-death
// signal from an ordinary goroutine is killed, at random, whenever any
// goroutine locked to the same thread ends: the e2e fault test's streamer
// server was SIGKILLed that way when the postmaster the test had restarted
// (from a locked goroutine) exited in the next outage.
//
// # Overview
//
// [Start] forks the child from a goroutine locked to its OS thread for the
// child's whole life: no other goroutine runs on that thread, so nothing
// else can end it. Once the child has been waited for, the goroutine
// unlocks, handing the thread back to the runtime instead of ending it.
//
// # Invariants
//
//   - The child's parent-death signal is SIGKILL (Linux; elsewhere there is
//     none), whatever cmd.SysProcAttr already holds (Credential, Setpgid...
//     are kept).
//   - The forking thread stays locked from before the fork until the child
//     has been waited for, and is then unlocked, never ended: a Start never
//     kills another process's child by ending a thread.
//   - Every started child is waited for by exactly one goroutine, owned by
//     the [Process]; [Process.Done] is closed after it returns and
//     [Process.Err] is the exit status from then on.
//   - Callers never call cmd.Wait themselves.
package childproc
