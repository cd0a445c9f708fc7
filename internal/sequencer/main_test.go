package sequencer_test

import (
	"testing"

	"github.com/streamer-dev/streamer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
