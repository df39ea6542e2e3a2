#!/usr/bin/env bash
# Host-side steps of a primary failover on self-run PostgreSQL (docs/operations.md, "Primary
# failover"). The promotion itself: `python manage.py db_failover promote HOST:PORT`.
# Run as the owner of the data directory (postgres). Patroni, CloudNativePG or a managed
# service do all of this themselves.
#
#   scripts/pg-failover.sh fence  DATA_DIR
#       The old primary can only ever start read-only (a standby.signal in its data directory).
#       Do this first, on the old primary's host, before anything can restart it.
#   scripts/pg-failover.sh rejoin DATA_DIR 'host=NEW_PRIMARY port=5432 user=postgres'
#       Stops it if running, rewinds it onto the new primary's timeline with pg_rewind (needs
#       wal_log_hints=on or data checksums), writes standby.signal and primary_conninfo, starts it
#       as a standby of the new primary. PG_CTL_OPTIONS: extra `pg_ctl -o` options (port, sockets).
#   scripts/pg-failover.sh repoint PGBOUNCER_INI OLD_HOST:OLD_PORT NEW_HOST:NEW_PORT ['ADMIN_CONNINFO']
#       Rewrites the [databases] entries that point at the old primary and has PgBouncer reload
#       (RELOAD on its admin console; default 'host=127.0.0.1 port=6432 dbname=pgbouncer user=postgres').
set -euo pipefail

PG_BIN=${PG_BIN:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}

usage() { sed -n '2,20p' "$0" >&2; exit 2; }

fence() {
  local data=$1
  touch "$data/standby.signal"
  echo "fenced: $data starts read-only (standby.signal)"
}

rejoin() {
  local data=$1 source=$2
  fence "$data"
  if "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop
  fi
  # pg_rewind first finishes the crash recovery of a killed server in single-user mode, which
  # refuses standby mode: the fence comes off for that, and --write-recovery-conf puts it back.
  rm -f "$data/standby.signal"
  if ! "$PG_BIN/pg_rewind" --target-pgdata "$data" --source-server "$source" --write-recovery-conf --progress; then
    touch "$data/standby.signal"
    echo "pg_rewind failed: the node stays fenced and down; rebuild it with pg_basebackup" >&2
    exit 1
  fi
  test -f "$data/standby.signal"
  "$PG_BIN/pg_ctl" -D "$data" ${PG_CTL_OPTIONS:+-o "$PG_CTL_OPTIONS"} -l "$data/rejoin.log" -w start
  psql -X -At -d "$source" -c "SELECT application_name, state, sync_state FROM pg_stat_replication"
}

repoint() {
  local ini=$1 old=$2 new=$3 admin=${4:-"host=127.0.0.1 port=6432 dbname=pgbouncer user=postgres"}
  local old_host=${old%:*} old_port=${old##*:} new_host=${new%:*} new_port=${new##*:}
  sed -i -E "s/host=${old_host//./\\.} port=${old_port}([^0-9]|$)/host=${new_host} port=${new_port}\1/" "$ini"
  grep -n "host=" "$ini"
  psql -X -d "$admin" -c "RELOAD"
}

[ $# -ge 2 ] || usage
action=$1; shift
case $action in
  fence) fence "$@" ;;
  rejoin) [ $# -eq 2 ] || usage; rejoin "$@" ;;
  repoint) [ $# -ge 3 ] || usage; repoint "$@" ;;
  *) usage ;;
esac
