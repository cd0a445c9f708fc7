package faultproxy

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// StartFor starts a proxy in front of the PostgreSQL server of dbURL (TCP,
// or a unix socket directory such as a throwaway cluster's) and returns it
// with the URL of the same database through the proxy (sslmode=disable:
// the proxy is on loopback).
func StartFor(dbURL string) (*Proxy, string, error) {
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		return nil, "", fmt.Errorf("faultproxy: parse database URL: %w", err)
	}
	dial := Dial("tcp", fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	if strings.HasPrefix(cfg.Host, "/") {
		dial = Dial("unix", filepath.Join(cfg.Host, fmt.Sprintf(".s.PGSQL.%d", cfg.Port)))
	}
	p, err := Start(dial)
	if err != nil {
		return nil, "", err
	}
	u := url.URL{Scheme: "postgres", Host: p.Addr(), Path: "/" + cfg.Database, RawQuery: "sslmode=disable"}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	} else {
		u.User = url.User(cfg.User)
	}
	return p, u.String(), nil
}
