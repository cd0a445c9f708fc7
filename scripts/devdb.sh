#!/usr/bin/env bash
# The local development database: a PostgreSQL cluster in .data/pg that
# listens only on a unix socket in .data/run (TCP port 5432 stays free), logs
# to .data/pg.log and holds the database "streamer".
#
#   scripts/devdb.sh start   create the cluster on first use, start it, create the database
#   scripts/devdb.sh stop    stop it (fast shutdown); the data stays
#   scripts/devdb.sh status  say whether it is running (exit 3 if not)
#   scripts/devdb.sh url     print its DATABASE_URL
#
# As root, the cluster runs as the postgres OS user (initdb and postgres refuse
# root) and .data belongs to that user, so every directory above .data must be
# searchable by others (o+x); start says which one is not.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
top="$root/.data"
data="$top/pg"
run="$top/run"
log="$top/pg.log"
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

# check_reachable fails, naming the directories to fix, when the postgres
# user cannot reach .data.
check_reachable() {
	((EUID == 0)) || return 0
	id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user; run scripts/ensure-deps.sh"
	local dir="$root" blocked=()
	while [[ "$dir" != / ]]; do
		[[ "$(stat -c %A "$dir")" == *x ]] || blocked+=("$dir")
		dir="$(dirname "$dir")"
	done
	if ((${#blocked[@]} > 0)); then
		die "the postgres user cannot reach $top; let it with: chmod o+x ${blocked[*]}"
	fi
}

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

start() {
	local bin
	bin="$(bindir)"
	check_reachable
	mkdir -p "$top"
	if ((EUID == 0)); then
		chown postgres: "$top"
	fi

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

status() {
	if is_running; then
		echo "devdb: running, DATABASE_URL=$(url)"
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
*)
	echo "usage: $0 {start|stop|status|url}" >&2
	exit 2
	;;
esac
