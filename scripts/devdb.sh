#!/usr/bin/env bash
# The local development database: a PostgreSQL cluster that listens only on a
# unix socket (TCP port 5432 stays free) and holds the database "streamer".
# It lives in .data/ of the checkout (pg/ the cluster, run/ the socket,
# pg.log), unless the user that runs it cannot reach the checkout or the
# socket's path would be too long: then in /var/tmp/streamer-devdb-<hash of
# the checkout's path>, and start says so.
#
#   scripts/devdb.sh start   create the cluster on first use, start it, create the database
#   scripts/devdb.sh stop    stop it (fast shutdown); the data stays
#   scripts/devdb.sh status  say whether it is running, and where (exit 3 if not)
#   scripts/devdb.sh url     print its DATABASE_URL
#   scripts/devdb.sh where   print the directory that holds it
#   scripts/devdb.sh clean   stop it and delete it
#
# As root, the cluster runs as the postgres OS user (initdb and postgres refuse
# root) and its directory belongs to that user. A checkout under a home
# directory of mode 0700 (such as /root) is out of that user's reach, which is
# why the cluster then moves to /var/tmp: no permission is ever loosened.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
db=streamer
port=5432 # names the socket file (.s.PGSQL.5432); nothing listens on TCP

die() {
	echo "devdb: $*" >&2
	exit 1
}

# bindir prints a directory holding pg_ctl and initdb: the highest version
# under /usr/lib/postgresql, else pg_config --bindir, else PATH's.
bindir() {
	local dir
	dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5V | tail -n1 || true)"
	if [[ -z "$dir" || ! -x "$dir/pg_ctl" ]]; then
		dir="$(pg_config --bindir 2>/dev/null || true)"
	fi
	if [[ -z "$dir" || ! -x "$dir/pg_ctl" ]]; then
		dir="$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")"
	fi
	[[ -x "$dir/pg_ctl" && -x "$dir/initdb" ]] ||
		die "no PostgreSQL server binaries; run scripts/ensure-deps.sh (or apt-get install postgresql)"
	echo "$dir"
}

# as_pg runs a command as the user that owns the cluster, from / so that the
# postgres user never needs to read the caller's working directory.
as_pg() {
	if ((EUID == 0)); then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# need_postgres_user fails when running as root without the postgres user.
need_postgres_user() {
	((EUID == 0)) || return 0
	id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user; run scripts/ensure-deps.sh"
}

# outside is the directory for a checkout the cluster cannot live in: one per
# checkout, named for a hash of its path.
outside="/var/tmp/streamer-devdb-$(printf '%s' "$root" | sha256sum | cut -c1-16)"

# in_checkout_ok reports whether the cluster can live in the checkout's
# .data: the user that runs it can reach and enter the checkout (asked of the
# system, not read from mode bits: /tmp's sticky bit and ACLs count), and the
# socket's path fits the 107 bytes a unix socket path may have.
in_checkout_ok() {
	local sock="$root/.data/run/.s.PGSQL.$port.lock"
	((${#sock} <= 107)) || return 1
	((EUID == 0)) || return 0
	runuser -u postgres -- test -x "$root" 2>/dev/null
}

# top is the directory that holds the cluster. A cluster that exists is
# kept where it is; a new one goes into the checkout when it can.
if [[ -f "$root/.data/pg/PG_VERSION" ]]; then
	top="$root/.data"
elif [[ -f "$outside/pg/PG_VERSION" ]]; then
	top="$outside"
elif in_checkout_ok; then
	top="$root/.data"
else
	top="$outside"
fi
data="$top/pg"
run="$top/run"
log="$top/pg.log"

url() {
	# Percent-encode the socket path for the query string.
	local path="$run" enc="" c i
	for ((i = 0; i < ${#path}; i++)); do
		c="${path:i:1}"
		case "$c" in
		[A-Za-z0-9/._~-]) enc+="$c" ;;
		*) enc+="$(printf '%%%02X' "'$c")" ;;
		esac
	done
	echo "postgres://postgres@/$db?host=$enc&port=$port"
}

is_running() {
	[[ -f "$data/PG_VERSION" ]] && as_pg "$(bindir)/pg_ctl" status -D "$data" >/dev/null 2>&1
}

# where says where the cluster lives, and why when not in the checkout.
where() {
	if [[ "$top" == "$outside" ]]; then
		echo "devdb: the cluster lives in $top, outside the checkout, which the user that runs it cannot reach (or whose path is too long for its socket); scripts/devdb.sh clean deletes it"
	else
		echo "devdb: the cluster lives in $top"
	fi
}

start() {
	local bin
	bin="$(bindir)"
	need_postgres_user
	if [[ "$top" == "$outside" && ! -d "$top" ]]; then
		mkdir -m 0700 "$top"
		printf '%s\n' "$root" >"$top/checkout"
	fi
	mkdir -p "$top"
	if ((EUID == 0)); then
		chown postgres: "$top"
	fi
	where

	if [[ ! -f "$data/PG_VERSION" ]]; then
		echo "devdb: creating the cluster in $data"
		as_pg "$bin/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
		echo "include_if_exists = 'devdb.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
	fi
	# Written on every start, so a moved checkout still finds its socket.
	as_pg mkdir -p "$run"
	printf "listen_addresses = ''\nport = %s\nunix_socket_directories = '%s'\n" "$port" "${run//\'/\'\'}" |
		as_pg tee "$data/devdb.conf" >/dev/null

	if is_running; then
		echo "devdb: already running"
	else
		as_pg "$bin/pg_ctl" start -D "$data" -l "$log" -w -t 60 >/dev/null ||
			die "postgres did not start; see $log"
		echo "devdb: started (log: $log)"
	fi

	local exists
	exists="$(as_pg "$bin/psql" -X -q -t -A -d "$(url | sed "s|/$db?|/postgres?|")" \
		-c "SELECT 1 FROM pg_database WHERE datname = '$db'")"
	if [[ "$exists" != 1 ]]; then
		as_pg "$bin/psql" -X -q -d "$(url | sed "s|/$db?|/postgres?|")" -c "CREATE DATABASE $db"
		echo "devdb: created database $db"
	fi
	echo "devdb: DATABASE_URL=$(url)"
}

stop() {
	if is_running; then
		as_pg "$(bindir)/pg_ctl" stop -D "$data" -m fast -w >/dev/null
		echo "devdb: stopped"
	else
		echo "devdb: not running"
	fi
}

clean() {
	stop
	rm -rf "$top"
	echo "devdb: deleted $top"
}

status() {
	if is_running; then
		echo "devdb: running in $top, DATABASE_URL=$(url)"
	else
		echo "devdb: not running"
		return 3
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
url) url ;;
where) echo "$top" ;;
clean) clean ;;
*)
	echo "usage: $0 {start|stop|status|url|where|clean}" >&2
	exit 2
	;;
esac
