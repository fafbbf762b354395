#!/usr/bin/env bash
# Installs what a fresh machine lacks: npm packages, the Temporal CLI and server, PostgreSQL, moto
# (local AWS), Schemathesis (reads the API from its OpenAPI in the test suite), Chromium (the
# console's tests drive it).
#
# A tool already present is not installed again. INSTALL_FORCE (a list of temporal, postgres, moto,
# schemathesis, chromium, or all) installs those anyway, taking the path a fresh machine takes, e.g.
#   INSTALL_FORCE=all CI=true bash .ci/run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

INSTALL_FORCE="${INSTALL_FORCE:-}"
for tool in ${INSTALL_FORCE//,/ }; do
  case "$tool" in
    temporal | postgres | moto | schemathesis | chromium | all) ;;
    *) echo "scripts/install.sh: INSTALL_FORCE names '$tool'; it knows temporal, postgres, moto, schemathesis, chromium, all" >&2; exit 2 ;;
  esac
done
forced() { [[ " ${INSTALL_FORCE//,/ } " == *" $1 "* || " ${INSTALL_FORCE//,/ } " == *" all "* ]]; }

if [ -f package-lock.json ]; then npm ci; else npm install; fi

# The reliability suite runs on a Temporal server on PostgreSQL (CONTRACT §8). PostgreSQL comes from
# the system's packages when the machine has none; so does Chromium, which the console's tests drive
# (test/support/browser.ts; CHROMIUM names another build).
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
apt_updated=
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "scripts/install.sh: no apt-get to install $1: install it from your system's packages" >&2; exit 1; }
  [ -n "$apt_updated" ] || { "${sudo[@]}" apt-get update -q >/dev/null; apt_updated=1; }
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null
}
if forced postgres || { ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; then
  apt_install postgresql
fi
if forced chromium || { [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; }; then
  apt_install chromium
fi
# The Temporal CLI (the dev server) and the Temporal server, both built with Go (or the CLI downloaded).
temporal_install=(install)
if forced temporal; then temporal_install+=(--force); fi
TEMPORAL_PERSISTENCE=postgres ./temporal-dev.sh "${temporal_install[@]}" >/dev/null

reinstall() { if forced "$1"; then echo --force-reinstall; fi; }
if forced moto || ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install --quiet $(reinstall moto) "moto[server]~=5.2"
fi
command -v moto_server >/dev/null 2>&1 || {
  echo "scripts/install.sh: moto_server is not on PATH after pip install; add pip's bin folder ($(python3 -m site --user-base)/bin) to PATH" >&2
  exit 1
}
# Pinned to one minor release: a newer one brings new checks, which belong in a change of their own
# (test/schemathesis.test.ts, schemathesis.toml).
if forced schemathesis || ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet $(reinstall schemathesis) "schemathesis~=4.32.5"
fi
command -v schemathesis >/dev/null 2>&1 || {
  echo "scripts/install.sh: schemathesis is not on PATH after pip install; add pip's bin folder ($(python3 -m site --user-base)/bin) to PATH" >&2
  exit 1
}
