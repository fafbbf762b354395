#!/usr/bin/env bash
# Installs what a fresh machine lacks: npm packages, the Temporal CLI and server, PostgreSQL, moto
# (local AWS), Schemathesis (reads the API from its OpenAPI in the test suite).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -f package-lock.json ]; then npm ci; else npm install; fi
./temporal-dev.sh install >/dev/null
# The reliability suite runs on a Temporal server on PostgreSQL (CONTRACT §8): the server is built
# with Go, PostgreSQL comes from the system's packages when the machine has none.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q postgresql >/dev/null
fi
TEMPORAL_PERSISTENCE=postgres ./temporal-dev.sh install >/dev/null
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install --quiet "moto[server]~=5.2"
fi
command -v moto_server >/dev/null 2>&1 || {
  echo "scripts/install.sh: moto_server is not on PATH after pip install; add pip's bin folder ($(python3 -m site --user-base)/bin) to PATH" >&2
  exit 1
}
# Pinned to one minor release: a newer one brings new checks, which belong in a change of their own
# (test/schemathesis.test.ts, schemathesis.toml).
if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet "schemathesis~=4.32.5"
fi
command -v schemathesis >/dev/null 2>&1 || {
  echo "scripts/install.sh: schemathesis is not on PATH after pip install; add pip's bin folder ($(python3 -m site --user-base)/bin) to PATH" >&2
  exit 1
}
