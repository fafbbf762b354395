#!/usr/bin/env bash
# Installs what a fresh machine lacks: npm packages, the Temporal CLI, moto (local AWS).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -f package-lock.json ]; then npm ci; else npm install; fi
./temporal-dev.sh install >/dev/null
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install --quiet "moto[server]~=5.2"
fi
command -v moto_server >/dev/null 2>&1 || {
  echo "scripts/install.sh: moto_server is not on PATH after pip install; add pip's bin folder ($(python3 -m site --user-base)/bin) to PATH" >&2
  exit 1
}
