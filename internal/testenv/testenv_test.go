package testenv

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCI(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  bool
	}{{"true", true}, {"1", true}, {"TRUE", true}, {"false", false}, {"", false}, {"yes", false}} {
		t.Run(tt.value, func(t *testing.T) {
			t.Setenv("CI", tt.value)
			require.Equal(t, tt.want, CI())
		})
	}
}

func TestUnavailable(t *testing.T) {
	for _, tt := range []struct {
		ci                    string
		wantSkipped, wantFail bool
	}{{"false", true, false}, {"true", false, true}} {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			rec := &recorder{TB: t}
			done := make(chan struct{})
			go func() { // Skip and Fatal end the goroutine they run in
				defer close(done)
				Unavailable(rec, "no %s", "thing")
			}()
			<-done
			require.Equal(t, tt.wantSkipped, rec.skipped)
			require.Equal(t, tt.wantFail, rec.failed)
			require.Contains(t, rec.msg, "no thing")
		})
	}
}

// recorder notes what Unavailable asked of the test instead of doing it.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}

func (r *recorder) Skip(args ...any) {
	r.skipped, r.msg = true, args[0].(string)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.failed, r.msg = true, args[0].(string)
	runtime.Goexit()
}
