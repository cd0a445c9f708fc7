package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamer-dev/streamer/publisher"
)

// Publish waits for the commit and returns the event's id.
func Example() {
	ctx := context.Background()
	pool := connect(ctx) // a *pgxpool.Pool on a database migrated by `streamer migrate`
	defer pool.Close()

	p, err := publisher.New(ctx, pool, publisher.Config{})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)

	id, err := p.Publish(ctx, publisher.Event{Stream: "orders:42", Type: "order.paid", Data: `{"status":"paid"}`})
	if err != nil {
		panic(err)
	}
	var data string
	if err := pool.QueryRow(ctx, "SELECT data FROM streamer.events WHERE id = $1", id).Scan(&data); err != nil {
		panic(err)
	}
	fmt.Println(data)
	// Output: {"status":"paid"}
}

// Enqueue returns at once; Close sends what is queued and reports what it
// could not deliver before its deadline.
func ExamplePublisher_Enqueue() {
	ctx := context.Background()
	pool := connect(ctx)
	defer pool.Close()

	p, err := publisher.New(ctx, pool, publisher.Config{
		OnError: func(f publisher.Failure) { fmt.Println("failed:", f.Event.Data, f.Err) },
	})
	if err != nil {
		panic(err)
	}
	for i := range 1000 {
		err := p.Enqueue(publisher.Event{Stream: "clicks", Data: fmt.Sprint(i)})
		if errors.Is(err, publisher.ErrFull) {
			// Back off, or drop with a metric: the queue is at its bound.
			continue
		}
		if err != nil {
			panic(err)
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Close(closeCtx); err != nil {
		var ue *publisher.UndeliveredError
		if errors.As(err, &ue) {
			fmt.Println("undelivered:", len(ue.Failures))
		}
	}

	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM streamer.events WHERE stream = 'clicks'").Scan(&n); err != nil {
		panic(err)
	}
	fmt.Println(n)
	// Output: 1000
}

// A broken rule is reported before anything is sent, naming the rule.
func ExampleRuleError() {
	ctx := context.Background()
	pool := connect(ctx)
	defer pool.Close()
	p, err := publisher.New(ctx, pool, publisher.Config{})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)

	_, err = p.PublishAll(ctx,
		publisher.Event{Stream: "orders:1", Data: "fine"},
		publisher.Event{Stream: "orders:2", Type: "streamer.shutdown", Data: "reserved type"},
	)
	var re *publisher.RuleError
	if errors.As(err, &re) {
		fmt.Println(re.Index, re.Field, re.Rule)
	}
	// Output: 1 event event_type_reserved_rule
}

// PublishTx publishes inside your own transaction: the events exist only
// if it commits.
func ExamplePublishTx() {
	ctx := context.Background()
	pool := connect(ctx)
	defer pool.Close()

	tx, err := pool.Begin(ctx)
	if err != nil {
		panic(err)
	}
	defer tx.Rollback(ctx)
	// ... the transaction's own writes, e.g. UPDATE orders SET status = 'paid' ...
	ids, err := publisher.PublishTx(ctx, tx,
		publisher.Event{Stream: "orders:7", Type: "order.paid", Data: `{"id":7}`},
		publisher.Event{Stream: "customers:3", Type: "order.paid", Data: `{"order":7}`},
	)
	if err != nil {
		panic(err)
	}
	if err := tx.Commit(ctx); err != nil {
		panic(err)
	}
	fmt.Println(len(ids), ids[0] < ids[1])
	// Output: 2 true
}
