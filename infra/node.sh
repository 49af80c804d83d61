#!/usr/bin/env bash
# Node.js and npm for the TypeScript client's tests (clients/typescript), from Debian's packages
# when they are missing, then the package's dev dependencies from its lock file (npm ci).
# Idempotent and quiet: prints one line. Needs root for apt-get (CI runs as root).
set -euo pipefail
DIR="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq nodejs npm >/dev/null
fi
(cd "$DIR/clients/typescript" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
echo "[infra] node $(node --version), npm $(npm --version); clients/typescript dependencies installed"
