#!/usr/bin/env bash
# PostgreSQL (apt package "postgresql") on 127.0.0.1:${MEMLEDGER_PG_PORT:-15432}, cluster under
# infra/run/postgres/data, trust auth on loopback only, database "memledger".
# As root (CI) the server runs as the "postgres" system user, since PostgreSQL refuses root.
# Usage: infra/postgres.sh {start|stop|restart|status|env}
NAME=postgres
source "$(dirname "$0")/lib.sh"
PORT="${MEMLEDGER_PG_PORT:-15432}"
DATA="$RUN_DIR/$NAME/data"
DB=memledger

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }; done
  return 1
}

ensure_installed() {
  pg_bin >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed; run: sudo apt-get install -y postgresql"
  log "installing postgresql from apt"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q postgresql >"$RUN_DIR/postgres-apt.log" 2>&1 \
    || { (timeout 300 apt-get update -q && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q postgresql) \
         >>"$RUN_DIR/postgres-apt.log" 2>&1 || die "apt-get install postgresql failed (log: $RUN_DIR/postgres-apt.log)"; }
  pg_bin >/dev/null || die "postgresql installed but pg_ctl not found"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  ensure_installed
  local bin; bin="$(pg_bin)"
  mkdir -p "$RUN_DIR/$NAME"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$RUN_DIR/$NAME"
    # the postgres user must be able to reach its data directory: grant search (x) only where missing
    if ! runuser -u postgres -- test -x "$RUN_DIR/$NAME"; then
      local d="$RUN_DIR/$NAME"
      while [ "$d" != / ]; do
        runuser -u postgres -- test -x "$d" || { log "granting o+x on $d so the postgres user can reach its data"; chmod o+x "$d"; }
        d="$(dirname "$d")"
      done
    fi
  fi
  if as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then log "already running on $HOST:$PORT"; return 0; fi
  port_open "$PORT" && die "port $PORT is taken by another process"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb $DATA"
    as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$RUN_DIR/$NAME/initdb.log" 2>&1 \
      || as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >"$RUN_DIR/$NAME/initdb.log" 2>&1 \
      || { tail -n 20 "$RUN_DIR/$NAME/initdb.log" >&2; die "initdb failed"; }
  fi
  as_owner "$bin/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 30 start \
    -o "-c listen_addresses=$HOST -p $PORT -k $DATA -c max_connections=200 -c fsync=on" >/dev/null \
    || { tail -n 20 "$DATA/server.log" >&2; die "pg_ctl start failed"; }
  as_owner "$bin/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1 \
    || as_owner "$bin/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB" \
    || die "cannot create database $DB"
  log "up on $HOST:$PORT (database $DB)"
}

stop() {
  local bin; bin="$(pg_bin)" || { log "not installed"; return 0; }
  if [ -f "$DATA/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null || die "pg_ctl stop failed"
    log "stopped"
  else
    log "not running"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if bin="$(pg_bin)" && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then echo "postgres: running on $HOST:$PORT"; else echo "postgres: stopped"; exit 1; fi ;;
  env) echo "export MEMLEDGER_TEST_PG_DSN=postgresql://postgres@$HOST:$PORT/$DB" ;;
  *) usage ;;
esac
