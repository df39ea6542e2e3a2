#!/usr/bin/env bash
# Local backing services for the video platform (dev/test/CI box, loopback only).
#
#   scripts/services.sh up       install what is missing, start everything, print status
#   scripts/services.sh status   print a status table (exit 1 if a required service is down)
#   scripts/services.sh down     stop replica, pgbouncer, redis cluster and the S3 server
#   scripts/services.sh cluster  only the Redis Cluster step of `up` (ports and folder below)
#
# Services (all on 127.0.0.1):
#   5432       PostgreSQL 15 primary (provided by the machine; started if stopped)
#   5433       PostgreSQL hot standby (streaming replication, pg_basebackup -R -X stream)
#   6432       PgBouncer, transaction pooling in front of 5432 (scripts/services/pgbouncer.ini)
#   6379       Redis standalone (provided by the machine; started if stopped)
#   7000-7005  Redis Cluster, 3 masters (7000-7002) with one replica each (7003-7005); a master
#              lost is replaced by its replica. REDIS_CLUSTER_PORTS, REDIS_CLUSTER_REPLICA_PORTS
#              (empty: no replicas) and REDIS_CLUSTER_DIR choose other ports and folder. A cluster
#              formed earlier without replicas gets them added (add-node), not re-created.
#   9000       S3-compatible server (moto_server from the repo's virtualenv; optional)
#   1935, 8935 Live ingest: nginx + the RTMP module (RTMP on 1935, its HLS origin on 8935),
#              hooks to LIVE_HOOKS_URL (default the local app on :8000), secret LIVE_HOOK_SECRET
#
# `up` is idempotent: a second run only checks and is fast. `down` never stops
# the primary on 5432 nor Redis on 6379.
# Needs root (apt-get, runuser); PostgreSQL and PgBouncer run as user postgres.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CONF_DIR="$SCRIPT_DIR/services"

PG_BIN=/usr/lib/postgresql/15/bin
PG_VERSION=15
PG_CLUSTER=main
PG_HOST=127.0.0.1
PG_PRIMARY_PORT=5432
PG_REPLICA_PORT=5433
PG_SOCKET_DIR=/var/run/postgresql
REPLICA_BASE=/var/lib/postgresql/videoplatform-replica
REPLICA_DATA="$REPLICA_BASE/data"
REPLICA_LOG="$REPLICA_BASE/replica.log"
REPLICA_SLOT=videoplatform_replica

APP_ROLE=videoplatform
APP_PASSWORD=videoplatform
APP_DB=videoplatform

PGB_PORT=6432
PGB_RUN="$PG_SOCKET_DIR/videoplatform-pgbouncer"   # must match the paths in pgbouncer.ini

REDIS_PORT=6379
read -r -a CLUSTER_PORTS <<<"${REDIS_CLUSTER_PORTS:-7000 7001 7002}"
read -r -a CLUSTER_REPLICA_PORTS <<<"${REDIS_CLUSTER_REPLICA_PORTS-7003 7004 7005}"
CLUSTER_ALL_PORTS=("${CLUSTER_PORTS[@]}" "${CLUSTER_REPLICA_PORTS[@]}")
CLUSTER_BASE=${REDIS_CLUSTER_DIR:-/var/lib/redis-cluster}
CLUSTER_ADDR="127.0.0.1:${CLUSTER_ALL_PORTS[0]}-${CLUSTER_ALL_PORTS[-1]}"

MOTO_PORT=9000
LIVE_RTMP_PORT=${LIVE_RTMP_PORT:-1935}
LIVE_HTTP_PORT=${LIVE_HTTP_PORT:-8935}
LIVE_HOOKS_URL=${LIVE_HOOKS_URL:-http://127.0.0.1:8000/internal/live/hooks}
STATE_DIR=/tmp/videoplatform-services
MOTO_PID="$STATE_DIR/moto.pid"
MOTO_LOG="$STATE_DIR/moto.log"
LIVE_DIR="$STATE_DIR/live"
LIVE_PID="$STATE_DIR/live-ingest.pid"
LIVE_LOG="$STATE_DIR/live-ingest.log"

WAIT_SECS=30

export DEBIAN_FRONTEND=noninteractive
export PGCONNECT_TIMEOUT=5
# Make every client call explicit and independent of the caller's environment.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGSSLMODE || true

# ---------------------------------------------------------------- helpers ---

log()  { printf '  %-14s %s\n' "$1" "$2"; }
warn() { printf '  %-14s WARNING: %s\n' "$1" "$2" >&2; }

# wait_until SECONDS CMD...: poll CMD every 0.5 s; bounded.
wait_until() {
    local secs=$1; shift
    local tries=$((secs * 2)) i
    for ((i = 0; i < tries; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    return 1
}

# Run a command as postgres from a directory it can read.
as_pg() { (cd / && runuser -u postgres -- "$@"); }

# psql against the primary as superuser postgres, unaligned/tuples-only output.
psql_primary() {
    psql -X -q -v ON_ERROR_STOP=1 -At -h "$PG_HOST" -p "$PG_PRIMARY_PORT" -U postgres -d postgres "$@"
}
psql_replica() {
    psql -X -q -v ON_ERROR_STOP=1 -At -h "$PG_HOST" -p "$PG_REPLICA_PORT" -U postgres -d postgres "$@"
}

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }
# pid_is PID WORD: PID is alive and its command line mentions WORD (guards against stale pidfiles).
pid_is() { pid_alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"; }
pid_from()  { if [[ -s "$1" ]]; then head -n1 "$1" | tr -dc '0-9'; fi; }

# Stop a pid: TERM, wait up to 10 s, then KILL.
stop_pid() {
    local pid=$1 i
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do pid_alive "$pid" || return 0; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
}

# ------------------------------------------------------------ health checks ---

primary_up()  { pg_isready -q -h "$PG_HOST" -p "$PG_PRIMARY_PORT" -t 3; }
replica_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_REPLICA_PORT" -t 3; }
replica_up() {
    replica_ready || return 1
    [[ "$(psql_replica -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" == t ]]
}
replica_streaming() {
    [[ "$(psql_replica -c "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'" 2>/dev/null)" == 1 ]]
}
pgbouncer_up() {
    psql -X -At -h "$PG_HOST" -p "$PGB_PORT" -U postgres -d pgbouncer -c 'SHOW VERSION' >/dev/null 2>&1
}
redis_up() { [[ "$(redis-cli -h 127.0.0.1 -p "${1:-$REDIS_PORT}" ping 2>/dev/null)" == PONG ]]; }
cluster_info() { redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' || true; }
cluster_node_ok() { [[ "$(cluster_info "$1")" == *cluster_state:ok* ]]; }
cluster_up() {
    local p
    for p in "${CLUSTER_ALL_PORTS[@]}"; do cluster_node_ok "$p" || return 1; done
    [[ "$(cluster_info "${CLUSTER_PORTS[0]}")" == *cluster_known_nodes:${#CLUSTER_ALL_PORTS[@]}* ]] || return 1
    # Every replica attached (to whichever node is its master now, after a failover or not).
    (($(redis-cli -h 127.0.0.1 -p "${CLUSTER_PORTS[0]}" cluster nodes 2>/dev/null | grep -c ' slave ') \
        == ${#CLUSTER_REPLICA_PORTS[@]}))
}
# The masters formed without (some of) the replicas: a cluster created before they were configured.
cluster_masters_only() {
    local p
    for p in "${CLUSTER_PORTS[@]}"; do cluster_node_ok "$p" || return 1; done
    [[ "$(cluster_info "${CLUSTER_PORTS[0]}")" == *cluster_known_nodes:${#CLUSTER_PORTS[@]}* ]]
}
moto_up() { curl -sf -o /dev/null -m 3 "http://127.0.0.1:$MOTO_PORT/moto-api/" 2>/dev/null; }
live_up() { curl -sf -o /dev/null -m 3 "http://127.0.0.1:$LIVE_HTTP_PORT/healthz" 2>/dev/null; }
ffmpeg_up() { command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; }

moto_bin() {
    local venv="${VENV:-.venv}"
    [[ "$venv" == /* ]] || venv="$REPO_ROOT/$venv"
    printf '%s/bin/moto_server' "$venv"
}

# ------------------------------------------------------------------ steps ---

step_packages() {
    local missing=()
    command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
    [[ -x /usr/sbin/pgbouncer ]] || command -v pgbouncer >/dev/null 2>&1 || missing+=(pgbouncer)
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    [[ -x "$PG_BIN/postgres" && -x "$PG_BIN/initdb" ]] || missing+=("postgresql-$PG_VERSION")
    if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1 \
        || [[ ! -x "$PG_BIN/pg_basebackup" || ! -x "$PG_BIN/pg_ctl" ]]; then
        missing+=("postgresql-client-$PG_VERSION")
    fi
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
    # The live ingest: nginx with the RTMP module.
    [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    [[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]] || missing+=(libnginx-mod-rtmp)
    if ((${#missing[@]} == 0)); then
        log packages "all present"
        return 0
    fi
    if [[ $EUID -ne 0 ]]; then
        warn packages "missing ${missing[*]} but not root; cannot apt-get install"
        return 1
    fi
    log packages "installing: ${missing[*]}"
    mkdir -p "$STATE_DIR"
    local apt_log="$STATE_DIR/apt.log"
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
        tail -n 15 "$apt_log" >&2
        warn packages "apt-get failed; full log: $apt_log"
        return 1
    fi
    log packages "installed: ${missing[*]}"
}

ensure_socket_dir() {
    install -d -o postgres -g postgres -m 2775 "$PG_SOCKET_DIR"
}

start_primary() {
    ensure_socket_dir
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start >/dev/null 2>&1 || true
    wait_until "$WAIT_SECS" primary_up
}

restart_primary() {
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" restart -m fast >/dev/null
    wait_until "$WAIT_SECS" primary_up
}

replication_conn_ok() {
    psql -X -At "host=$PG_HOST port=$PG_PRIMARY_PORT user=postgres dbname=postgres replication=true" \
        -c 'IDENTIFY_SYSTEM' >/dev/null 2>&1
}

step_primary() {
    local did=()
    if ! primary_up; then
        start_primary || { warn primary "cannot start cluster $PG_VERSION/$PG_CLUSTER on :$PG_PRIMARY_PORT"; return 1; }
        did+=("started")
    fi

    # Streaming replication settings: change (and restart) only if needed.
    local wal_level senders slots restart=0
    wal_level=$(psql_primary -c 'SHOW wal_level')
    senders=$(psql_primary -c 'SHOW max_wal_senders')
    slots=$(psql_primary -c 'SHOW max_replication_slots')
    if [[ "$wal_level" != replica && "$wal_level" != logical ]]; then
        psql_primary -c "ALTER SYSTEM SET wal_level = 'replica'"; restart=1
    fi
    if ((senders < 3)); then psql_primary -c 'ALTER SYSTEM SET max_wal_senders = 10'; restart=1; fi
    if ((slots < 2)); then psql_primary -c 'ALTER SYSTEM SET max_replication_slots = 10'; restart=1; fi
    if ((restart)); then
        restart_primary || { warn primary "restart after ALTER SYSTEM failed"; return 1; }
        did+=("replication settings set + restarted")
    fi

    # pg_hba: a replication connection from 127.0.0.1 must be allowed.
    if ! replication_conn_ok; then
        local hba
        hba=$(psql_primary -c 'SHOW hba_file')
        if ! grep -q 'videoplatform-services: replication' "$hba"; then
            # Prepend so it wins over any later, stricter replication line.
            local tmp
            tmp=$(mktemp)
            {
                echo '# videoplatform-services: replication from loopback (dev/test box only)'
                echo 'host    replication     all             127.0.0.1/32            trust'
                cat "$hba"
            } >"$tmp"
            cat "$tmp" >"$hba"   # keep owner/mode of the original file
            rm -f "$tmp"
        fi
        psql_primary -c 'SELECT pg_reload_conf()' >/dev/null
        wait_until 10 replication_conn_ok || { warn primary "replication connection still refused (check $hba)"; return 1; }
        did+=("replication allowed in pg_hba")
    fi

    # Application role and database.
    if [[ "$(psql_primary -c "SELECT 1 FROM pg_roles WHERE rolname = '$APP_ROLE'")" != 1 ]]; then
        psql_primary -c "CREATE ROLE $APP_ROLE LOGIN SUPERUSER PASSWORD '$APP_PASSWORD'"
        did+=("role $APP_ROLE created")
    fi
    if [[ "$(psql_primary -c "SELECT 1 FROM pg_database WHERE datname = '$APP_DB'")" != 1 ]]; then
        psql_primary -c "CREATE DATABASE $APP_DB OWNER $APP_ROLE"
        did+=("database $APP_DB created")
    fi

    if ((${#did[@]})); then
        local joined
        printf -v joined '%s, ' "${did[@]}"
        log primary "127.0.0.1:$PG_PRIMARY_PORT: ${joined%, }"
    else
        log primary "127.0.0.1:$PG_PRIMARY_PORT already running and configured"
    fi
}

replica_pg_ctl() { as_pg "$PG_BIN/pg_ctl" -D "$REPLICA_DATA" "$@"; }

replica_start() {
    ensure_socket_dir
    replica_pg_ctl -l "$REPLICA_LOG" -w -t "$WAIT_SECS" \
        -o "-c port=$PG_REPLICA_PORT -c listen_addresses=$PG_HOST -c hot_standby=on" \
        start >/dev/null 2>&1 || return 1
    wait_until "$WAIT_SECS" replica_up
}

replica_stop() {
    [[ -f "$REPLICA_DATA/PG_VERSION" ]] || return 0
    if replica_pg_ctl status >/dev/null 2>&1; then
        replica_pg_ctl -m fast -w -t "$WAIT_SECS" stop >/dev/null 2>&1 \
            || replica_pg_ctl -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    fi
}

drop_replica_slot() {
    local sql="SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
               WHERE slot_name = '$REPLICA_SLOT' AND NOT active"
    local i
    for ((i = 0; i < 20; i++)); do
        psql_primary -c "$sql" >/dev/null 2>&1 || true
        [[ "$(psql_primary -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$REPLICA_SLOT'")" == 0 ]] && return 0
        sleep 0.5
    done
    return 1
}

replica_build() {
    replica_stop
    rm -rf "$REPLICA_DATA"
    install -d -o postgres -g postgres -m 0700 "$REPLICA_BASE"
    drop_replica_slot || { warn replica "slot $REPLICA_SLOT is still active on the primary"; return 1; }
    as_pg "$PG_BIN/pg_basebackup" -h "$PG_HOST" -p "$PG_PRIMARY_PORT" -U postgres \
        -D "$REPLICA_DATA" -R -X stream -C -S "$REPLICA_SLOT" --checkpoint=fast >/dev/null
    # The primary's postgresql.conf/pg_hba.conf live outside its data dir
    # (Debian layout), so the standby gets its own.
    install -o postgres -g postgres -m 0600 "$CONF_DIR/replica-postgresql.conf" "$REPLICA_DATA/postgresql.conf"
    install -o postgres -g postgres -m 0600 "$CONF_DIR/replica-pg_hba.conf" "$REPLICA_DATA/pg_hba.conf"
    [[ -f "$REPLICA_DATA/pg_ident.conf" ]] || install -o postgres -g postgres -m 0600 /dev/null "$REPLICA_DATA/pg_ident.conf"
    # A hot standby needs these >= the primary's values.
    {
        echo
        echo "# copied from the primary at build time"
        psql_primary -c "SELECT name || ' = ' || setting FROM pg_settings WHERE name IN
            ('max_connections', 'max_worker_processes', 'max_prepared_transactions',
             'max_locks_per_transaction', 'max_wal_senders')"
    } >>"$REPLICA_DATA/postgresql.conf"
}

step_replica() {
    primary_up || { warn replica "primary is down; skipping"; return 1; }
    if replica_up && wait_until 15 replica_streaming; then
        log replica "127.0.0.1:$PG_REPLICA_PORT already running (hot standby, streaming)"
        return 0
    fi
    if [[ -f "$REPLICA_DATA/PG_VERSION" && -f "$REPLICA_DATA/standby.signal" ]]; then
        if replica_pg_ctl status >/dev/null 2>&1; then
            # Running but not a usable standby (promoted or wedged): rebuild.
            log replica "running but not a streaming standby; rebuilding"
        elif replica_start && wait_until 15 replica_streaming; then
            log replica "127.0.0.1:$PG_REPLICA_PORT started (existing data dir, streaming)"
            return 0
        else
        log replica "existing data dir failed to start or stream; rebuilding"
        fi
    fi
    replica_build || { warn replica "pg_basebackup failed"; return 1; }
    if replica_start; then
        log replica "127.0.0.1:$PG_REPLICA_PORT rebuilt with pg_basebackup and started"
    else
        warn replica "standby did not become ready within ${WAIT_SECS}s; see $REPLICA_LOG"
        return 1
    fi
}

pgbouncer_pid() { pid_from "$PGB_RUN/pgbouncer.pid"; }

step_pgbouncer() {
    install -d -o postgres -g postgres -m 0750 "$PGB_RUN"
    local changed=0
    cmp -s "$CONF_DIR/pgbouncer.ini" "$PGB_RUN/pgbouncer.ini" || changed=1
    cmp -s "$CONF_DIR/pgbouncer-userlist.txt" "$PGB_RUN/userlist.txt" || changed=1
    if ((changed)); then
        install -o postgres -g postgres -m 0640 "$CONF_DIR/pgbouncer.ini" "$PGB_RUN/pgbouncer.ini"
        install -o postgres -g postgres -m 0600 "$CONF_DIR/pgbouncer-userlist.txt" "$PGB_RUN/userlist.txt"
    fi
    local pid
    pid=$(pgbouncer_pid)
    if pid_is "$pid" pgbouncer && pgbouncer_up; then
        if ((changed)); then
            kill -HUP "$pid"
            log pgbouncer "127.0.0.1:$PGB_PORT running; config changed, reloaded"
        else
            log pgbouncer "127.0.0.1:$PGB_PORT already running"
        fi
        return 0
    fi
    if pid_is "$pid" pgbouncer; then stop_pid "$pid"; fi
    rm -f "$PGB_RUN/pgbouncer.pid"
    local bin
    bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    # max_client_conn = 1000 needs more file descriptors than a 1024 default.
    (
        if (($(ulimit -n) < 4096)); then ulimit -n 4096 2>/dev/null || true; fi
        as_pg "$bin" -d -q "$PGB_RUN/pgbouncer.ini" >/dev/null 2>&1
    )
    if wait_until "$WAIT_SECS" pgbouncer_up; then
        log pgbouncer "127.0.0.1:$PGB_PORT started (transaction pooling -> :$PG_PRIMARY_PORT)"
    else
        warn pgbouncer "did not come up; see $PGB_RUN/pgbouncer.log"
        return 1
    fi
}

step_redis() {
    if redis_up "$REDIS_PORT"; then
        log redis "127.0.0.1:$REDIS_PORT already running"
        return 0
    fi
    install -d /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
    if wait_until "$WAIT_SECS" redis_up "$REDIS_PORT"; then
        log redis "127.0.0.1:$REDIS_PORT started"
    else
        warn redis "did not come up on :$REDIS_PORT"
        return 1
    fi
}

cluster_node_start() {
    local port=$1 dir="$CLUSTER_BASE/$1"
    install -d -m 0750 "$dir"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
        --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 5000 \
        --dir "$dir" --save "" --appendonly no \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
    wait_until "$WAIT_SECS" redis_up "$port"
}

cluster_empty_everywhere() {
    local p info
    for p in "${CLUSTER_ALL_PORTS[@]}"; do
        info=$(cluster_info "$p")
        [[ "$info" == *cluster_slots_assigned:0* && "$info" == *cluster_known_nodes:1* ]] || return 1
    done
}

cluster_create() {
    local addrs=() p
    # redis-cli makes the first nodes listed the masters and the rest their replicas.
    for p in "${CLUSTER_ALL_PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$(cluster_replicas_per_master)" \
        --cluster-yes >/dev/null
    wait_until "$WAIT_SECS" cluster_up
}

cluster_replicas_per_master() { echo $((${#CLUSTER_REPLICA_PORTS[@]} / ${#CLUSTER_PORTS[@]})); }

# Replicas joined to a running cluster (its data kept): each goes to the master with the fewest.
cluster_add_replicas() {
    local p
    for p in "${CLUSTER_REPLICA_PORTS[@]}"; do
        [[ "$(cluster_info "$p")" == *cluster_known_nodes:1* ]] || continue
        redis-cli --cluster add-node "127.0.0.1:$p" "127.0.0.1:${CLUSTER_PORTS[0]}" --cluster-slave >/dev/null
        wait_until 15 cluster_node_ok "$p" || return 1
    done
    wait_until "$WAIT_SECS" cluster_up
}

step_cluster() {
    local started=() p
    for p in "${CLUSTER_ALL_PORTS[@]}"; do
        if ! redis_up "$p"; then
            cluster_node_start "$p" || { warn cluster "node :$p did not start; see $CLUSTER_BASE/$p/redis.log"; return 1; }
            started+=("$p")
        fi
    done
    if cluster_up; then
        if ((${#started[@]})); then log cluster "nodes ${started[*]} started; cluster_state:ok"
        else log cluster "$CLUSTER_ADDR already formed (cluster_state:ok)"; fi
        return 0
    fi
    if ((${#CLUSTER_REPLICA_PORTS[@]})) && cluster_masters_only; then
        if cluster_add_replicas; then
            log cluster "replicas ${CLUSTER_REPLICA_PORTS[*]} added to the running cluster (cluster_state:ok)"
            return 0
        fi
        warn cluster "could not add the replicas ${CLUSTER_REPLICA_PORTS[*]}"
        return 1
    fi
    # Freshly restarted nodes that kept nodes.conf re-form by themselves.
    if ! cluster_empty_everywhere && wait_until 10 cluster_up; then
        log cluster "nodes ${started[*]:-} restarted; cluster re-formed from nodes.conf"
        return 0
    fi
    if ! cluster_empty_everywhere; then
        # Partial or stale topology: wipe (no persistence anyway) and re-create.
        for p in "${CLUSTER_ALL_PORTS[@]}"; do
            redis-cli -h 127.0.0.1 -p "$p" flushall >/dev/null 2>&1 || true
            redis-cli -h 127.0.0.1 -p "$p" cluster reset hard >/dev/null 2>&1 || true
        done
    fi
    if cluster_create; then
        log cluster "created ${#CLUSTER_PORTS[@]} masters, $(cluster_replicas_per_master) replica(s) each, on $CLUSTER_ADDR (cluster_state:ok)"
    else
        warn cluster "cluster did not reach cluster_state:ok within ${WAIT_SECS}s"
        return 1
    fi
}

step_moto() {
    local bin
    bin=$(moto_bin)
    mkdir -p "$STATE_DIR"
    if moto_up; then
        log s3 "http://127.0.0.1:$MOTO_PORT already running"
        return 0
    fi
    if [[ ! -x "$bin" ]]; then
        warn s3 "$bin not found (install moto[server] in the venv); skipping"
        return 0
    fi
    local old
    old=$(pid_from "$MOTO_PID")
    if pid_is "$old" moto_server; then stop_pid "$old"; fi
    # setsid: own process group/session, so it outlives this shell.
    setsid nohup "$bin" -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 </dev/null &
    echo $! >"$MOTO_PID"
    if wait_until "$WAIT_SECS" moto_up; then
        log s3 "http://127.0.0.1:$MOTO_PORT started (moto_server, pid $(cat "$MOTO_PID"))"
    else
        warn s3 "moto_server did not answer within ${WAIT_SECS}s; see $MOTO_LOG"
        return 0   # optional service
    fi
}

# The live ingest (scripts/live-ingest.sh) in the background. Debian's nginx package may start
# its own default server on :80 when installed where systemd runs; this one has its own config.
step_live() {
    mkdir -p "$STATE_DIR"
    if live_up; then
        log live "rtmp://127.0.0.1:$LIVE_RTMP_PORT/live already running (origin :$LIVE_HTTP_PORT)"
        return 0
    fi
    if [[ ! -x /usr/sbin/nginx || ! -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]]; then
        warn live "nginx-light / libnginx-mod-rtmp not installed; live streaming is off"
        return 0
    fi
    local old
    old=$(pid_from "$LIVE_PID")
    if pid_is "$old" live-ingest; then stop_pid "$old"; fi
    LIVE_HOOK_SECRET=${LIVE_HOOK_SECRET:-dev-live-hook-secret} setsid nohup bash "$REPO_ROOT/scripts/live-ingest.sh" \
        --rtmp-port "$LIVE_RTMP_PORT" --http-port "$LIVE_HTTP_PORT" \
        --hooks-url "$LIVE_HOOKS_URL" --dir "$LIVE_DIR" >"$LIVE_LOG" 2>&1 </dev/null &
    echo $! >"$LIVE_PID"
    if wait_until "$WAIT_SECS" live_up; then
        log live "rtmp://127.0.0.1:$LIVE_RTMP_PORT/live started (origin :$LIVE_HTTP_PORT, hooks $LIVE_HOOKS_URL)"
    else
        warn live "the ingest did not come up; see $LIVE_LOG"
        return 0   # optional service
    fi
}

step_ffmpeg() {
    if ffmpeg_up; then
        log ffmpeg "$(ffmpeg -hide_banner -version 2>/dev/null | awk 'NR==1{print $1, $2, $3}')"
    else
        warn ffmpeg "ffmpeg/ffprobe not installed"
        return 1
    fi
}

# Run a step in a subshell with errexit active; a failing step is reported and
# the remaining steps still run (the final status decides the exit code).
run_step() {
    local rc
    set +e
    (set -e; "$@")
    rc=$?
    set -e
    ((rc == 0)) || warn "$1" "step failed (exit $rc)"
    return 0
}

# ----------------------------------------------------------------- status ---

status_table() {
    local failed=0 svc addr fn required state
    printf '\n%-18s %-28s %s\n' SERVICE ADDRESS STATE
    printf '%-18s %-28s %s\n' ------------------ ---------------------------- -----
    while IFS='|' read -r svc addr fn required; do
        if $fn >/dev/null 2>&1; then state=up; else
            state=down
            [[ "$required" == yes ]] && failed=1
            [[ "$required" == no ]] && state="down (optional)"
        fi
        printf '%-18s %-28s %s\n' "$svc" "$addr" "$state"
    done <<EOF
postgres-primary|127.0.0.1:$PG_PRIMARY_PORT|primary_up|yes
postgres-replica|127.0.0.1:$PG_REPLICA_PORT|replica_up|yes
pgbouncer|127.0.0.1:$PGB_PORT|pgbouncer_up|yes
redis|127.0.0.1:$REDIS_PORT|redis_up|yes
redis-cluster|$CLUSTER_ADDR|cluster_up|yes
s3 (moto)|http://127.0.0.1:$MOTO_PORT|moto_up|no
live-ingest|rtmp://127.0.0.1:$LIVE_RTMP_PORT|live_up|no
rabbitmq|127.0.0.1:5672|rabbitmq_up|yes
ffmpeg|$(command -v ffmpeg || echo -)|ffmpeg_up|yes
EOF
    return "$failed"
}

# --------------------------------------------------------------- rabbitmq ---
# The broker for the RabbitMQ side of the Celery priority tests (127.0.0.1:5672).

rabbitmq_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

step_rabbitmq() {
    if rabbitmq_up; then
        log rabbitmq "127.0.0.1:5672 already running"
        return 0
    fi
    rabbitmq-server -detached >/dev/null 2>&1 || true
    if wait_until 60 rabbitmq_up; then
        log rabbitmq "127.0.0.1:5672 started"
    else
        warn rabbitmq "did not come up on :5672"
        return 1
    fi
}

# ------------------------------------------------------------------- down ---

down_replica() {
    if [[ -f "$REPLICA_DATA/PG_VERSION" ]] && replica_pg_ctl status >/dev/null 2>&1; then
        replica_stop
        log replica "stopped (data dir kept: $REPLICA_DATA)"
    else
        log replica "not running"
    fi
}

down_pgbouncer() {
    local pid
    pid=$(pgbouncer_pid)
    if pid_is "$pid" pgbouncer; then
        stop_pid "$pid"
        rm -f "$PGB_RUN/pgbouncer.pid"
        log pgbouncer "stopped"
    else
        log pgbouncer "not running"
    fi
}

down_cluster() {
    local p stopped=()
    for p in "${CLUSTER_ALL_PORTS[@]}"; do
        if redis_up "$p"; then
            redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
            wait_until 10 bash -c "! redis-cli -h 127.0.0.1 -p $p ping" || true
            stopped+=("$p")
        fi
    done
    if ((${#stopped[@]})); then log cluster "stopped nodes ${stopped[*]}"; else log cluster "not running"; fi
}

down_moto() {
    local pid
    pid=$(pid_from "$MOTO_PID")
    if pid_is "$pid" moto_server; then
        kill -TERM -- "-$pid" 2>/dev/null || true   # its process group (started via setsid)
        stop_pid "$pid"
        rm -f "$MOTO_PID"
        log s3 "moto_server stopped"
    else
        rm -f "$MOTO_PID"
        if moto_up; then warn s3 "something else answers on :$MOTO_PORT (not started by this script)"
        else log s3 "not running"; fi
    fi
}

down_live() {
    local pid
    pid=$(pid_from "$LIVE_PID")
    if pid_is "$pid" live-ingest; then
        stop_pid "$pid"   # the script stops nginx, its packagers and their ffmpeg on TERM
        rm -f "$LIVE_PID"
        log live "stopped"
    else
        rm -f "$LIVE_PID"
        log live "not running"
    fi
}

# ------------------------------------------------------------------- main ---

# Serialize concurrent up/down runs. flock -o keeps the lock in the flock
# process only, so the daemons started below do not inherit it.
with_lock() {
    if [[ -z "${_VIDEOPLATFORM_SERVICES_LOCKED:-}" ]]; then
        mkdir -p "$STATE_DIR"
        export _VIDEOPLATFORM_SERVICES_LOCKED=1
        exec flock -o -w 300 "$STATE_DIR/lock" bash "${BASH_SOURCE[0]}" "$@"
    fi
}

usage() { echo "usage: $0 up|down|status|cluster" >&2; exit 2; }

main() {
    [[ $# -eq 1 ]] || usage
    case "$1" in
        up)
            with_lock "$@"
            echo "services up:"
            run_step step_packages
            run_step step_primary
            run_step step_replica
            run_step step_pgbouncer
            run_step step_redis
            run_step step_cluster
            run_step step_moto
            run_step step_rabbitmq
            run_step step_ffmpeg
            run_step step_live
            if status_table; then
                echo "all required services are up"
            else
                echo "ERROR: some required services are down" >&2
                exit 1
            fi
            ;;
        down)
            with_lock "$@"
            echo "services down:"
            run_step down_replica
            run_step down_pgbouncer
            run_step down_cluster
            run_step down_moto
            run_step down_live
            log primary "left running (machine service)"
            log redis "left running (machine service)"
            ;;
        status)
            status_table
            ;;
        cluster)
            with_lock "$@"
            run_step step_cluster
            cluster_up
            ;;
        *) usage ;;
    esac
}

main "$@"
