#!/usr/bin/env bash
# Elasticsearch REST API on 127.0.0.1:${MEMLEDGER_ES_PORT:-19200}. No Elasticsearch/OpenSearch
# distribution is obtainable here, so this runs PyPI "noida-db", an API-compatible stand-in
# (dense_vector kNN, BM25 match, bulk); the adapter uses documented ES APIs only, so a real
# cluster works the same. Data under infra/run/elasticsearch/data.
# Usage: infra/elasticsearch.sh {start|stop|status|env}
NAME=elasticsearch
source "$(dirname "$0")/lib.sh"
PORT="${MEMLEDGER_ES_PORT:-19200}"

start() {
  if is_running; then log "already running on $HOST:$PORT"; return 0; fi
  port_open "$PORT" && die "port $PORT is taken by another process"
  local venv; venv="$(tool_venv noida-db)"
  start_bg "$RUN_DIR/$NAME/server.log" "$venv/bin/noida-db" start --only elasticsearch --host "$HOST" \
    --elasticsearch-port "$PORT" --data-dir "$RUN_DIR/$NAME/data"
  wait_port "$PORT" 30 || { tail -n 20 "$RUN_DIR/$NAME/server.log" >&2; stop_pid; die "server did not come up"; }
  log "up on http://$HOST:$PORT (pid $(cat "$(pidfile)"))"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid ;;
  status) if is_running && port_open "$PORT"; then echo "elasticsearch: running on $HOST:$PORT"; else echo "elasticsearch: stopped"; exit 1; fi ;;
  env) echo "export MEMLEDGER_TEST_ES=http://$HOST:$PORT" ;;
  *) usage ;;
esac
