#!/usr/bin/env bash
# Stop every distributed-tier server started by infra/up.sh and remove infra/run/env.sh.
set -uo pipefail
DIR="$(cd "$(dirname "$0")" && pwd)"
RUN_DIR="${MEMLEDGER_INFRA_RUN:-$DIR/run}"
SERVERS=("$@"); [ ${#SERVERS[@]} -gt 0 ] || SERVERS=(elasticsearch neo4j kafka postgres)
rc=0
for s in "${SERVERS[@]}"; do timeout 120 "$DIR/$s.sh" stop || { echo "[infra] ERROR: stopping $s failed" >&2; rc=1; }; done
[ $# -gt 0 ] || rm -f "$RUN_DIR/env.sh"
exit $rc
