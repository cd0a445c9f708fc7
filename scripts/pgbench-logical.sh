#!/usr/bin/env bash
# What logical decoding would cost publishers (docs/benchmarks.md, "Ordering
# modes", "Designs tried"): pgbench INSERTs into a plain table with
# wal_level=replica, with wal_level=logical and no slot, and with a pgoutput
# slot on a publication consumed live by pg_recvlogical; modes interleaved,
# ROUNDS rounds of SECONDS per figure. Prints tx/s, WAL bytes per transaction,
# and the walsender's and pg_recvlogical's CPU per row.
#
#   PGDATA=<a throwaway cluster, owned by postgres> PGSOCK=<its socket dir> \
#     scripts/pgbench-logical.sh [SECONDS] [ROUNDS]
#
# Restarts the cluster (fsync=on) with each wal_level; run it as root (it uses
# su postgres for pg_ctl). The cluster needs a database "bench".
set -uo pipefail
S=${1:-15}; R=${2:-2}
: "${PGDATA:?set PGDATA}" "${PGSOCK:?set PGSOCK}"
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | tail -1)
SOCK=$PGSOCK
U="host=$SOCK user=postgres dbname=bench"
PSQL=(psql "$U" -X -q -t -A)
restart() { su postgres -c "$PGBIN/pg_ctl -D $PGDATA -w -m fast restart -o \"-c fsync=on -c wal_level=$1 -c max_replication_slots=4 -c max_wal_senders=4 -c max_connections=200 -c shared_buffers=256MB -c listen_addresses='' -c unix_socket_directories=$SOCK\"" >/dev/null; }
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
tmp=$(mktemp -d)
echo "INSERT INTO plain (stream, data) VALUES ('orders:' || (random()*1000)::int, repeat('x', 200));" >$tmp/one.sql
echo "INSERT INTO plain (stream, data) SELECT 'orders:' || (random()*1000)::int, repeat('x', 200) FROM generate_series(1,100);" >$tmp/hundred.sql
"${PSQL[@]}" -c "CREATE TABLE IF NOT EXISTS plain (id bigserial primary key, stream text not null, data text, created_at timestamptz not null default now())"
"${PSQL[@]}" -c "DROP PUBLICATION IF EXISTS pub; CREATE PUBLICATION pub FOR TABLE plain"
run() { # mode rows clients
  local f=$tmp/$2.sql rp=""
  if [ "$1" = slot ]; then
    "${PSQL[@]}" -c "SELECT pg_create_logical_replication_slot('s', 'pgoutput')" >/dev/null
    $PGBIN/pg_recvlogical -d "$U" -S s --start -o proto_version=1 -o publication_names=pub -f /dev/null -F 1 &
    rp=$!
    for i in $(seq 50); do ws=$("${PSQL[@]}" -c "select pid from pg_stat_replication limit 1"); [ -n "$ws" ] && break; sleep 0.1; done
    w0=$(cpu $ws); r0=$(cpu $rp)
  fi
  local lsn0=$("${PSQL[@]}" -c "SELECT pg_current_wal_lsn()")
  out=$($PGBIN/pgbench -n -T "$S" -c "$3" -j 2 -f "$f" "$U" 2>&1)
  tps=$(awk '/^tps/ {print $3}' <<<"$out"); tx=$(awk '/number of transactions actually processed/ {print $NF}' <<<"$out")
  wal=$("${PSQL[@]}" -c "SELECT pg_current_wal_lsn() - '$lsn0'::pg_lsn")
  extra=""
  if [ -n "$rp" ]; then
    # let the consumer catch up, then read its CPU
    for i in $(seq 300); do lag=$("${PSQL[@]}" -c "select pg_current_wal_lsn() - confirmed_flush_lsn from pg_replication_slots where slot_name='s'"); [ "${lag%.*}" -lt 100000 ] 2>/dev/null && break; sleep 0.1; done
    w1=$(cpu $ws); r1=$(cpu $rp); m=1; [ "$2" = hundred ] && m=100; rows=$(( tx * m ))
    extra=" walsender_us_per_row=$(( (w1-w0)*10000 / (rows>0?rows:1) )) recv_us_per_row=$(( (r1-r0)*10000 / (rows>0?rows:1) )) catchup_lag=$lag"
    kill $rp; wait $rp 2>/dev/null
    "${PSQL[@]}" -c "SELECT pg_drop_replication_slot('s')" >/dev/null
  fi
  echo "round=$r rows=$2 clients=$3 mode=$1 tps=$tps wal_bytes_per_tx=$((wal / (tx > 0 ? tx : 1)))$extra"
}
for r in $(seq $R); do
  for cfg in "one 8" "one 64" "hundred 8"; do
    set -- $cfg
    restart replica; run replica $1 $2
    restart logical; run logical $1 $2; run slot $1 $2
  done
done
rm -rf $tmp
