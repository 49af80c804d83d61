#!/usr/bin/env bash
# The test command: start the servers the integration tests need (infra/up.sh, loopback only),
# run the whole suite, stop the servers. Integration tests skip with a message when a server
# could not start. pytest's "no tests collected" (exit 5) counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -x infra/up.sh ] && [ "${MEMLEDGER_NO_SERVERS:-0}" != "1" ]; then
  trap 'infra/down.sh >/dev/null 2>&1 || true' EXIT
  infra/up.sh || echo "tests/run.sh: some servers did not start; their integration tests will skip" >&2
  if [ -f infra/run/env.sh ]; then
    # shellcheck disable=SC1091
    . infra/run/env.sh
  fi
fi
python -m pytest -q -rs "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
