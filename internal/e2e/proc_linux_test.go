package e2e

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal kills the server if the test binary dies first (for
// example at go test -timeout), so no server outlives its test.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
