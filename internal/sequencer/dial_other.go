//go:build !linux

package sequencer

import "time"

// setUserTimeout does nothing: TCP_USER_TIMEOUT is Linux's. Keepalive
// probes still end a silent connection, after longer.
func setUserTimeout(uintptr, time.Duration) error { return nil }
