#!/usr/bin/env bash
# Publisher throughput per ordering mode (docs/benchmarks.md, "Ordering modes"):
# single-row and 100-row INSERTs into a table without triggers (plain), into
# streamer.events in trigger mode and in ticks mode, with a `streamer serve`
# (its sequencer) running throughout; modes interleaved, ROUNDS rounds of
# SECONDS per figure. Prints tx/s, WAL bytes per transaction and ticks/s.
#
#   DATABASE_URL=<a database streamer may own> scripts/pgbench-ordering.sh [SECONDS] [ROUNDS]
#
# Needs pgbench and psql; builds bin/streamer. Leaves the database in ticks mode.
set -euo pipefail
S=${1:-15}; R=${2:-2}
: "${DATABASE_URL:?set DATABASE_URL}"
cd "$(dirname "$0")/.."
go build -o bin/streamer ./cmd/streamer
bin/streamer migrate
PSQL=(psql "$DATABASE_URL" -X -q -t -A)
"${PSQL[@]}" -c "CREATE TABLE IF NOT EXISTS public.plain (LIKE streamer.events INCLUDING ALL)"
tmp=$(mktemp -d)
for t in plain streamer.events; do
	n=${t#streamer.}
	echo "INSERT INTO $t (stream, data) VALUES ('orders:' || (random()*1000)::int, repeat('x', 200));" >"$tmp/one_$n.sql"
	echo "INSERT INTO $t (stream, data) SELECT 'orders:' || (random()*1000)::int, repeat('x', 200) FROM generate_series(1,100);" >"$tmp/hundred_$n.sql"
done
STREAMER_ADDR=127.0.0.1:0 STREAMER_RETENTION=0 bin/streamer serve >"$tmp/serve.log" 2>&1 &
serve=$!
trap 'kill $serve; rm -rf "$tmp"' EXIT
for r in $(seq "$R"); do
	for cfg in "one 8" "one 64" "hundred 8"; do
		set -- $cfg
		for mode in plain trigger ticks; do
			f=$tmp/${1}_events.sql
			if [ "$mode" = plain ]; then f=$tmp/${1}_plain.sql; else "${PSQL[@]}" -c "SELECT streamer.set_ordering('$mode')" >/dev/null; fi
			read -r lsn0 ticks0 <<<"$("${PSQL[@]}" -F ' ' -c "SELECT pg_current_wal_lsn(), ticks FROM streamer.ordering")"
			out=$(pgbench -n -T "$S" -c "$2" -j 2 -f "$f" "$DATABASE_URL" 2>&1)
			tps=$(awk '/^tps/ {print $3}' <<<"$out")
			tx=$(awk '/number of transactions actually processed/ {print $NF}' <<<"$out")
			read -r wal ticks <<<"$("${PSQL[@]}" -F ' ' -c "SELECT pg_current_wal_lsn() - '$lsn0'::pg_lsn, ticks - $ticks0 FROM streamer.ordering")"
			echo "round=$r rows=$1 clients=$2 mode=$mode tps=$tps wal_bytes_per_tx=$((wal / (tx > 0 ? tx : 1))) ticks_per_s=$((ticks / S))"
		done
	done
done
"${PSQL[@]}" -c "SELECT streamer.set_ordering('ticks')" >/dev/null
