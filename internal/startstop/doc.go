// Package startstop is the one lifecycle contract of streamer's long-running
// services: the listener, the dispatcher, the publish batcher, the SSE hub and
// the HTTP server.
//
// # Overview
//
// A service embeds [Base] and implements [Service]:
//
//	func (s *Svc) Start(ctx context.Context) error {
//		ctx, shouldStart, started, stopped := s.StartInit(ctx)
//		if !shouldStart {
//			return nil // already running
//		}
//		if err := s.connect(ctx); err != nil { // fail fast, synchronously
//			stopped()
//			return err
//		}
//		go func() {
//			started()
//			defer stopped()
//			s.run(ctx) // returns once ctx is done
//		}()
//		return nil
//	}
//
// The service's goroutines run until the context StartInit returned is done,
// which happens when the caller's context is cancelled or when [Base.Stop] is
// called (with the cause [ErrStop]). They call the stopped function once
// every goroutine the service owns has exited.
//
// # Invariants
//
//   - Start returns once the service runs, or with an error and nothing
//     running. A second Start while running is a no-op that returns nil.
//   - Cancelling Start's context stops the service exactly as Stop does;
//     [Base.Stopped] is closed once its goroutines have exited.
//   - Stop blocks until the goroutines have exited. It is safe before Start
//     (a no-op), twice, and concurrently from several goroutines.
//   - After Stop returns the service may be started again.
//   - The context given to the service's goroutines carries a cause:
//     [ErrStop] after Stop, else the caller's cause.
package startstop
