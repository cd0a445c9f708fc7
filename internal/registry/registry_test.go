package registry_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamer-dev/streamer/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type sub struct{ name string }

func TestRegistry(t *testing.T) {
	t.Parallel()

	t.Run("add lookup remove", func(t *testing.T) {
		t.Parallel()
		r := registry.New[*sub]()
		a, b := &sub{"a"}, &sub{"b"}
		r.Add(a, []string{"x", "y"})
		r.Add(b, []string{"y"})
		require.Equal(t, []*sub{a}, r.Lookup("x"))
		require.ElementsMatch(t, []*sub{a, b}, r.Lookup("y"))
		require.Equal(t, 2, r.Len())
		require.Equal(t, 2, r.Streams())

		require.True(t, r.Remove(a))
		require.False(t, r.Remove(a))
		require.Empty(t, r.Lookup("x"))
		require.Equal(t, []*sub{b}, r.Lookup("y"))
		require.Equal(t, 1, r.Streams())
	})

	t.Run("snapshots are not changed by later writes", func(t *testing.T) {
		t.Parallel()
		r := registry.New[*sub]()
		a, b := &sub{"a"}, &sub{"b"}
		r.Add(a, []string{"x"})
		snap := r.Lookup("x")
		r.Add(b, []string{"x"})
		r.Remove(a)
		require.Equal(t, []*sub{a}, snap)
		require.Equal(t, []*sub{b}, r.Lookup("x"))
	})

	t.Run("streams and for each", func(t *testing.T) {
		t.Parallel()
		r := registry.New[*sub]()
		a, b := &sub{"a"}, &sub{"b"}
		r.Add(a, []string{"x", "y"})
		r.Add(b, []string{"y", "z"})
		require.ElementsMatch(t, []string{"x", "y", "z"}, r.AppendStreams(nil))
		var seen []*sub
		r.ForEach(func(s *sub) bool {
			seen = append(seen, s)
			r.Remove(s) // removing from inside f is allowed
			return true
		})
		require.ElementsMatch(t, []*sub{a, b}, seen)
		require.Zero(t, r.Len())
		require.Empty(t, r.AppendStreams(nil))

		r.Add(a, []string{"x"})
		r.Add(b, []string{"x"})
		n := 0
		r.ForEach(func(*sub) bool { n++; return false })
		require.Equal(t, 1, n, "ForEach stops when f returns false")
	})

	t.Run("re-add replaces streams", func(t *testing.T) {
		t.Parallel()
		r := registry.New[*sub]()
		a := &sub{"a"}
		r.Add(a, []string{"x"})
		r.Add(a, []string{"y"})
		require.Empty(t, r.Lookup("x"))
		require.Equal(t, []*sub{a}, r.Lookup("y"))
		require.Equal(t, 1, r.Len())
	})

	t.Run("concurrent readers and writers", func(t *testing.T) {
		t.Parallel()
		r := registry.New[*sub]()
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 500 {
					s := &sub{fmt.Sprint(w, i)}
					r.Add(s, []string{"s", fmt.Sprint("s", i%7)})
					if i%2 == 0 {
						r.Remove(s)
					}
				}
			})
			wg.Go(func() {
				for range 500 {
					for _, s := range r.Lookup("s") {
						require.NotNil(t, s)
					}
					r.ForEach(func(s *sub) bool { require.NotNil(t, s); return true })
					_ = r.AppendStreams(nil)
				}
			})
		}
		wg.Wait()
		require.Equal(t, 1000, r.Len())
		require.Len(t, r.Lookup("s"), 1000)
	})
}
