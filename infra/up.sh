#!/usr/bin/env bash
# Start every distributed-tier server on 127.0.0.1 and write infra/run/env.sh with the endpoints
# of those that came up (MEMLEDGER_TEST_PG_DSN, MEMLEDGER_TEST_KAFKA, MEMLEDGER_TEST_NEO4J,
# MEMLEDGER_TEST_ES) and infra/run/app-env.sh with the same endpoints under the names memledger
# itself reads (MEMLEDGER_PG_DSN, MEMLEDGER_KAFKA, MEMLEDGER_ES, MEMLEDGER_NEO4J). A server that
# fails is reported loudly and left out of both, so its integration tests skip with a clear message
# instead of failing the whole run.
# Usage: infra/up.sh [server...]   (default: postgres kafka neo4j elasticsearch)
set -uo pipefail
DIR="$(cd "$(dirname "$0")" && pwd)"
RUN_DIR="${MEMLEDGER_INFRA_RUN:-$DIR/run}"
mkdir -p "$RUN_DIR"
SERVERS=("$@"); [ ${#SERVERS[@]} -gt 0 ] || SERVERS=(postgres kafka neo4j elasticsearch)
ENV_FILE="$RUN_DIR/env.sh"
TMP="$ENV_FILE.tmp"
echo "# written by infra/up.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ); source it before running tests" >"$TMP"
failed=()
for s in "${SERVERS[@]}"; do
  if timeout 900 "$DIR/$s.sh" start; then
    "$DIR/$s.sh" env >>"$TMP"
  else
    echo "[infra] ERROR: $s did not start; its integration tests will be skipped" >&2
    failed+=("$s")
  fi
done
mv "$TMP" "$ENV_FILE"
# the same endpoints under the names the application reads ($MEMLEDGER_PG_DSN, $MEMLEDGER_KAFKA,
# $MEMLEDGER_ES, $MEMLEDGER_NEO4J override memledger.toml); kept apart so tests never pick them up
APP_ENV_FILE="$RUN_DIR/app-env.sh"
sed -e 's/^# written by infra\/up.sh\(.*\); source it before running tests/# written by infra\/up.sh\1; source it before running memledger/' \
    -e 's/MEMLEDGER_TEST_PG_DSN=/MEMLEDGER_PG_DSN=/; s/MEMLEDGER_TEST_KAFKA=/MEMLEDGER_KAFKA=/' \
    -e 's/MEMLEDGER_TEST_ES=/MEMLEDGER_ES=/; s/MEMLEDGER_TEST_NEO4J=/MEMLEDGER_NEO4J=/' "$ENV_FILE" >"$APP_ENV_FILE"
echo "[infra] endpoints written to $ENV_FILE (tests) and $APP_ENV_FILE (memledger):" >&2
sed 's/^/[infra]   /' "$ENV_FILE" >&2
if [ ${#failed[@]} -gt 0 ]; then echo "[infra] FAILED: ${failed[*]}" >&2; exit 1; fi
