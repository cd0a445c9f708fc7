package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// option is one setting: a flag mirrored by an environment variable. The
// environment sets the default; a flag given on the command line wins.
type option struct {
	flag, env, def, usage string
}

// settings binds options to a FlagSet and prints them for --help.
type settings struct {
	fs      *flag.FlagSet
	options []option
	errs    map[string]error // by flag: a bad environment value
}

func newSettings(name string, out io.Writer) *settings {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &settings{fs: fs, errs: map[string]error{}}
}

func (s *settings) lookup(o option) string {
	s.options = append(s.options, o)
	if v, ok := os.LookupEnv(o.env); ok {
		return v
	}
	return o.def
}

func (s *settings) String(p *string, o option) {
	s.fs.StringVar(p, o.flag, s.lookup(o), o.usage)
}

func (s *settings) Duration(p *time.Duration, o option) {
	raw := s.lookup(o)
	d, err := time.ParseDuration(raw)
	if err != nil {
		s.errs[o.flag] = fmt.Errorf("%s=%q: %w", o.env, raw, err)
	}
	s.fs.DurationVar(p, o.flag, d, o.usage)
}

func (s *settings) Int(p *int, o option) {
	raw := s.lookup(o)
	n, err := strconv.Atoi(raw)
	if err != nil {
		s.errs[o.flag] = fmt.Errorf("%s=%q: %w", o.env, raw, err)
	}
	s.fs.IntVar(p, o.flag, n, o.usage)
}

func (s *settings) Bool(p *bool, o option) {
	raw := s.lookup(o)
	b, err := strconv.ParseBool(raw)
	if err != nil {
		s.errs[o.flag] = fmt.Errorf("%s=%q: %w", o.env, raw, err)
	}
	s.fs.BoolVar(p, o.flag, b, o.usage)
}

// usage prints every option with its variable and default.
func (s *settings) usage(w io.Writer, synopsis string) {
	fmt.Fprintf(w, "%s\n\nFlags (each mirrored by an environment variable; flags win):\n", synopsis)
	for _, o := range s.options {
		def := o.def
		if def == "" {
			def = "(required)"
		}
		fmt.Fprintf(w, "  --%-26s %s\n  %-28s env %s, default %s\n", o.flag, o.usage, "", o.env, def)
	}
}

// parse parses args; environment errors are reported only for options the
// command line did not set.
func (s *settings) parse(args []string, synopsis string) error {
	s.fs.Usage = func() { s.usage(s.fs.Output(), synopsis) }
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(s.fs.Args(), " "))
	}
	set := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, o := range s.options {
		if err := s.errs[o.flag]; err != nil && !set[o.flag] {
			return err
		}
	}
	return nil
}
