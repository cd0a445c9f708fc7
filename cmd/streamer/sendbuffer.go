package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
)

// optSendBuffer caps the kernel send buffer of every accepted socket. The
// default was chosen by measurement (docs/reliability.md, "Kernel memory
// per connection"): a client that stops reading, or a slow consumer the
// server cut, then pins at most twice this in the kernel instead of the
// autotuned several MiB, and fan-out throughput does not drop.
var optSendBuffer = option{"socket-send-buffer", "STREAMER_SOCKET_SEND_BUFFER", "32768",
	"SO_SNDBUF of every accepted socket in bytes (the kernel reserves twice that); bounds the kernel memory a client that stops reading holds; 0: the kernel's autotuning"}

// minSendBuffer is the smallest send buffer accepted: below it the kernel
// raises the value to its own minimum anyway, and every event would take
// several writes.
const minSendBuffer = 4096

// checkSendBuffer refuses a send buffer that is negative or too small, and
// warns when the kernel will cap it (net.core.wmem_max).
func checkSendBuffer(bytes int, log zerolog.Logger) error {
	if bytes == 0 {
		return nil
	}
	if bytes < minSendBuffer {
		return fmt.Errorf("%s=%d: want 0 (the kernel's autotuning) or at least %d bytes", optSendBuffer.env, bytes, minSendBuffer)
	}
	if b, err := os.ReadFile("/proc/sys/net/core/wmem_max"); err == nil {
		if limit, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && bytes > limit {
			log.Warn().Int("bytes", bytes).Int("wmem_max", limit).
				Msg(optSendBuffer.env + " is above net.core.wmem_max: the kernel caps it there")
		}
	}
	return nil
}
