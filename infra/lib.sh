# Shared helpers for the infra/*.sh server scripts (sourced, not executed).
# Every server binds to 127.0.0.1 only; its data, logs and pid live under infra/run/<name>/.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_DIR="${MEMLEDGER_INFRA_RUN:-$INFRA_DIR/run}"
VENVS="${MEMLEDGER_INFRA_VENVS:-$RUN_DIR/venvs}"
HOST=127.0.0.1
PYTHON_BOOT="${MEMLEDGER_INFRA_PYTHON:-python3}"
mkdir -p "$RUN_DIR" "$VENVS"

log() { echo "[infra:${NAME:-?}] $*" >&2; }
die() { echo "[infra:${NAME:-?}] ERROR: $*" >&2; exit 1; }

# tool_venv PKG -> installs PKG from PyPI into its own venv (idempotent) and prints the venv path.
tool_venv() {
  local pkg="$1" venv="$VENVS/$1"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1; then
    log "installing $pkg from PyPI into $venv"
    "$PYTHON_BOOT" -m venv "$venv" || die "cannot create venv $venv"
    timeout 600 "$venv/bin/python" -m pip install -q --disable-pip-version-check "$pkg" >"$VENVS/$pkg.install.log" 2>&1 \
      || { tail -n 20 "$VENVS/$pkg.install.log" >&2; die "pip install $pkg failed (log: $VENVS/$pkg.install.log)"; }
  fi
  echo "$venv"
}

site_packages() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

pidfile() { echo "$RUN_DIR/$NAME/pid"; }

is_running() {
  local pf; pf="$(pidfile)"
  [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# wait_port PORT SECONDS: bounded wait until something listens on 127.0.0.1:PORT.
wait_port() {
  local port="$1" secs="$2" i=0
  while [ "$i" -lt $((secs * 5)) ]; do
    port_open "$port" && return 0
    is_running || return 1
    sleep 0.2; i=$((i + 1))
  done
  return 1
}

# start_bg LOGFILE CMD...: start CMD detached in its own session, record its pid.
start_bg() {
  local logf="$1"; shift
  mkdir -p "$RUN_DIR/$NAME"
  setsid "$@" >"$logf" 2>&1 < /dev/null &
  echo $! >"$(pidfile)"
}

# stop_pid: TERM the recorded process group, then KILL after a bounded wait.
stop_pid() {
  local pf pid i=0; pf="$(pidfile)"
  [ -f "$pf" ] || { log "not running"; return 0; }
  pid="$(cat "$pf")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      log "did not stop in 10 s; killing"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pf"
  log "stopped"
}

usage() { echo "usage: $0 {start|stop|restart|status|env}" >&2; exit 2; }
