// Command streamer is a Server-Sent Events server backed by PostgreSQL.
//
//	streamer migrate   apply the embedded migrations to DATABASE_URL
//	streamer serve     run the HTTP server until SIGTERM or SIGINT
//	streamer token     print a token signed with the HMAC secret (development)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/streamer-dev/streamer/migrations"

	"github.com/jackc/pgx/v5"
)

const usage = `streamer: Server-Sent Events from PostgreSQL

Usage:
  streamer migrate [flags]   apply the embedded migrations to DATABASE_URL
  streamer serve [flags]     serve HTTP until SIGTERM/SIGINT
  streamer token [flags]     print a token signed with STREAMER_JWT_SECRET
  streamer <command> --help  list the command's flags

`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var err error
	switch args[0] {
	case "migrate":
		err = migrateCommand(ctx, args[1:], stdout)
	case "serve":
		err = serveCommand(ctx, args[1:], stdout, stderr)
	case "token":
		err = tokenCommand(args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		var cfg serveConfig
		s := cfg.bind(stdout)
		s.usage(stdout, "Flags of streamer serve:")
		return 0
	default:
		fmt.Fprintf(stderr, "streamer: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "streamer %s: %v\n", args[0], err)
		return 1
	}
}

func migrateCommand(ctx context.Context, args []string, stdout io.Writer) error {
	var dbURL, orderingName string
	s := newSettings("streamer migrate", stdout)
	s.String(&dbURL, optDatabaseURL)
	s.String(&orderingName, optOrdering)
	if err := s.parse(args, "Usage: streamer migrate [flags]"); err != nil {
		return err
	}
	if dbURL == "" {
		return errors.New("DATABASE_URL (or --database-url) is required")
	}
	ordering, err := migrations.ParseOrdering(orderingName)
	if err != nil {
		return fmt.Errorf("STREAMER_ORDERING: %w", err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Read before migrating: a database no migration had touched is new,
	// and gets the default mode for new databases.
	applied, err := migrations.AppliedVersion(ctx, conn)
	if err != nil {
		return err
	}
	if err := migrateDatabase(ctx, conn); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	ordering, reason, err := migrations.ApplyOrdering(ctx, conn, ordering, applied)
	if err != nil {
		return fmt.Errorf("ordering mode: %w", err)
	}
	fmt.Fprintf(stdout, "ordering: %s (%s)\n", ordering, reason)
	return nil
}
