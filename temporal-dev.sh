#!/usr/bin/env bash
# Local Temporal dev server for this project (CONTRACT §6, §8).
#
#   ./temporal-dev.sh            start `temporal server start-dev` in the foreground, with the
#                                project's search attributes registered
#   TEMPORAL_PERSISTENCE=postgres ./temporal-dev.sh
#                                start a Temporal server on PostgreSQL instead (the engine a
#                                production deployment has; no Web UI), see start_postgres below
#   ./temporal-dev.sh install    only make sure the CLI exists (and with TEMPORAL_PERSISTENCE=postgres
#                                the server and PostgreSQL); print the CLI's absolute path on stdout
#   ./temporal-dev.sh install --force
#                                the same, but build (or download) the CLI and the server into
#                                TEMPORAL_CACHE_DIR even when one is on PATH or cached: the path a
#                                fresh machine takes
#
# Environment: TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233; 0 = no UI), TEMPORAL_HEADLESS=1,
# TEMPORAL_DB_FILE (<repo>/.dev/temporal.db), TEMPORAL_CACHE_DIR (<repo>/.cache/temporal-bin),
# TEMPORAL_PERSISTENCE (sqlite | postgres), TEMPORAL_PG_DIR (<repo>/.dev/postgres).
# The CLI is looked up as: `temporal` on PATH, then $TEMPORAL_CACHE_DIR/temporal, then built with
# `go install`, then downloaded from the official release.
set -euo pipefail

TEMPORAL_CLI_VERSION=1.5.1
# The server release CLI v1.5.1 embeds: the dev server and the PostgreSQL one run the same engine.
TEMPORAL_SERVER_VERSION=1.29.1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${TEMPORAL_CACHE_DIR:-$REPO/.cache/temporal-bin}"

log() { echo "temporal-dev: $*" >&2; }
die() { log "error: $*"; exit 1; }

absolute() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }

install_with_go() {
  log "building the Temporal CLI v$TEMPORAL_CLI_VERSION with go install (takes a few minutes the first time)"
  local tmp
  tmp="$(mktemp -d "$CACHE_DIR/.go-install.XXXXXX")" || return 1
  if CGO_ENABLED=0 GOBIN="$tmp" go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" >&2; then
    mv -f "$tmp/temporal" "$CACHE_DIR/temporal" # rename: concurrent installers never see half a file
    rm -rf "$tmp"
  else
    rm -rf "$tmp"
    return 1
  fi
}

fetch() { # url dest
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --connect-timeout 10 --retry 2 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -T 10 -O "$2" "$1"
  else
    return 1
  fi
}

install_by_download() {
  local os arch
  case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) log "no release download for $(uname -s)"; return 1 ;;
  esac
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) log "no release download for $(uname -m)"; return 1 ;;
  esac
  command -v tar >/dev/null 2>&1 || { log "tar is missing"; return 1; }
  local name="temporal_cli_${TEMPORAL_CLI_VERSION}_${os}_${arch}.tar.gz"
  local github="https://github.com/temporalio/cli/releases/download/v$TEMPORAL_CLI_VERSION"
  local tmp
  tmp="$(mktemp -d "$CACHE_DIR/.download.XXXXXX")" || return 1
  log "downloading the Temporal CLI v$TEMPORAL_CLI_VERSION for $os/$arch"
  if ! fetch "$github/$name" "$tmp/cli.tar.gz" &&
    ! fetch "https://temporal.download/cli/archive/v$TEMPORAL_CLI_VERSION?platform=$os&arch=$arch" "$tmp/cli.tar.gz"; then
    rm -rf "$tmp"
    log "download failed (no network?)"
    return 1
  fi
  # Check the archive against the release's checksums when they can be fetched.
  if fetch "$github/checksums.txt" "$tmp/checksums.txt" 2>/dev/null; then
    local want got
    want="$(awk -v n="$name" '$2 == n { print $1 }' "$tmp/checksums.txt")"
    if command -v sha256sum >/dev/null 2>&1; then got="$(sha256sum "$tmp/cli.tar.gz" | awk '{print $1}')"
    else got="$(shasum -a 256 "$tmp/cli.tar.gz" | awk '{print $1}')"; fi
    if [ -n "$want" ] && [ "$want" != "$got" ]; then
      rm -rf "$tmp"
      log "checksum mismatch for $name"
      return 1
    fi
  fi
  tar -xzf "$tmp/cli.tar.gz" -C "$tmp" temporal || { rm -rf "$tmp"; log "archive has no temporal binary"; return 1; }
  chmod +x "$tmp/temporal"
  mv -f "$tmp/temporal" "$CACHE_DIR/temporal"
  rm -rf "$tmp"
}

# Prints the absolute path of a usable temporal CLI, installing it if needed.
find_cli() {
  local onpath
  if [ "$FORCE_INSTALL" != 1 ]; then
    if onpath="$(command -v temporal 2>/dev/null)"; then
      absolute "$onpath"
      return
    fi
    if [ -x "$CACHE_DIR/temporal" ]; then
      absolute "$CACHE_DIR/temporal"
      return
    fi
  fi
  mkdir -p "$CACHE_DIR"
  local built=0
  if command -v go >/dev/null 2>&1; then
    if install_with_go; then built=1; else log "go install failed; trying the release download"; fi
  fi
  if [ "$built" = 0 ]; then
    install_by_download ||
      die "no Temporal CLI: none on PATH, none at $CACHE_DIR/temporal, go install and download both failed.
  Install it by hand (https://docs.temporal.io/cli#install) and put it on PATH, or set TEMPORAL_CACHE_DIR."
  fi
  absolute "$CACHE_DIR/temporal"
}

SEARCH_ATTRIBUTES=(AccessTenant=Keyword AccessPrincipal=Keyword AccessTarget=Keyword AccessRole=Keyword AccessStatus=Keyword
  AccessGrantId=Keyword AccessRequestId=Keyword AccessExpiresAt=Datetime AccessRequestIds=KeywordList AccessAwaitingReview=Bool)

start() {
  local cli
  cli="$(find_cli)"
  local port="${TEMPORAL_PORT:-7233}"
  local ui_port="${TEMPORAL_UI_PORT:-8233}"
  local db="${TEMPORAL_DB_FILE:-$REPO/.dev/temporal.db}"
  mkdir -p "$(dirname "$db")"
  # WAL with synchronous=NORMAL: a commit no longer rewrites a rollback journal, which made the dev
  # server's single SQLite writer the bottleneck of the whole stack under load. Still durable when
  # the server is killed (only an OS crash can lose the last commits).
  local args=(server start-dev --ip 127.0.0.1 --port "$port" --db-filename "$db" --namespace default --log-level warn
    --sqlite-pragma journal_mode=WAL --sqlite-pragma synchronous=NORMAL
    --dynamic-config-value system.enableActivityEagerExecution=true)
  if [ "$ui_port" = 0 ] || [ "${TEMPORAL_HEADLESS:-0}" = 1 ]; then
    args+=(--headless)
  else
    args+=(--ui-port "$ui_port")
  fi
  local sa
  for sa in "${SEARCH_ATTRIBUTES[@]}"; do args+=(--search-attribute "$sa"); done
  log "Temporal dev server on 127.0.0.1:$port, db $db$([ "$ui_port" = 0 ] || [ "${TEMPORAL_HEADLESS:-0}" = 1 ] || echo ", UI http://127.0.0.1:$ui_port")"
  exec "$cli" "${args[@]}" "$@"
}

# ---------------------------------------------------------------------------------------------
# TEMPORAL_PERSISTENCE=postgres: the Temporal server (go.temporal.io/server, the release the dev
# server embeds) on PostgreSQL for persistence and visibility, with 4 history shards: the shape of
# a self-hosted production cluster, in one process, on the dev server's address.

# Prints the folder holding temporal-server and temporal-sql-tool, building them if needed.
find_server() {
  local dir="$CACHE_DIR/server-$TEMPORAL_SERVER_VERSION"
  if [ "$FORCE_INSTALL" != 1 ] && [ -x "$dir/temporal-server" ] && [ -x "$dir/temporal-sql-tool" ]; then
    echo "$dir"
    return
  fi
  command -v go >/dev/null 2>&1 ||
    die "TEMPORAL_PERSISTENCE=postgres builds the Temporal server with Go, which is missing: install Go 1.24 or newer (https://go.dev/dl/)"
  mkdir -p "$CACHE_DIR"
  log "building the Temporal server v$TEMPORAL_SERVER_VERSION and its SQL tool with go install (takes several minutes the first time)"
  local tmp
  tmp="$(mktemp -d "$CACHE_DIR/.server-install.XXXXXX")"
  if ! CGO_ENABLED=0 GOBIN="$tmp" go install "go.temporal.io/server/cmd/server@v$TEMPORAL_SERVER_VERSION" \
    "go.temporal.io/server/cmd/tools/sql@v$TEMPORAL_SERVER_VERSION" >&2; then
    rm -rf "$tmp"
    die "go install of go.temporal.io/server@v$TEMPORAL_SERVER_VERSION failed (see above)"
  fi
  mv "$tmp/server" "$tmp/temporal-server"
  mv "$tmp/sql" "$tmp/temporal-sql-tool"
  # A forced build replaces the cached one.
  [ "$FORCE_INSTALL" = 1 ] && rm -rf "$dir"
  # rename: a concurrent installer never sees half a folder; the loser drops its copy
  mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  echo "$dir"
}

# Prints the folder holding initdb and postgres (PATH first, then Debian's and Homebrew's places).
find_postgres() {
  local initdb dir
  if initdb="$(command -v initdb 2>/dev/null)" && [ -x "$(dirname "$(readlink -f "$initdb")")/postgres" ]; then
    dirname "$(readlink -f "$initdb")"
    return
  fi
  for dir in /usr/lib/postgresql/*/bin /usr/local/opt/postgresql*/bin /opt/homebrew/opt/postgresql*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return
    fi
  done
  die "TEMPORAL_PERSISTENCE=postgres needs a PostgreSQL server (initdb, postgres), which is missing: install it (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql), or run scripts/install.sh"
}

# Prints N free loopback TCP ports below 32768, one per line: Temporal's SQL schema keeps a
# member's port in a smallint, so the kernel's ephemeral range (from 32768) does not fit.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
held = []
while len(held) < int(sys.argv[1]):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(20000, 32768)))
        held.append(s)
    except OSError:
        s.close()
print("\n".join(str(s.getsockname()[1]) for s in held))
PY
}

start_postgres() {
  local cli server_dir pg_bin
  cli="$(find_cli)"
  server_dir="$(find_server)"
  pg_bin="$(find_postgres)"
  local port="${TEMPORAL_PORT:-7233}"
  local dir="${TEMPORAL_PG_DIR:-$REPO/.dev/postgres}"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"

  # The dev server's --dynamic-config-value options, for tests that tune the engine.
  local dynamic=(
    "system.enableActivityEagerExecution: [{ value: true }]"
    # As the dev server: a search attribute is usable as soon as it is created.
    "system.forceSearchAttributesCacheRefreshOnRead: [{ value: true }]"
    # As the dev server: the default (10 per second per frontend) is below what the read side
    # asks of visibility; a production namespace needs the same (docs/operations.md).
    "frontend.namespaceRPS.visibility: [{ value: 100 }]"
  )
  while [ $# -gt 0 ]; do
    case "$1" in
      --dynamic-config-value) dynamic+=("${2%%=*}: [{ value: ${2#*=} }]"); shift 2 ;;
      --headless | --log-level) [ "$1" = --log-level ] && shift; shift ;;
      *) die "TEMPORAL_PERSISTENCE=postgres: unsupported option '$1'" ;;
    esac
  done

  # PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root, and PostgreSQL refuses root: create a 'postgres' user (useradd -r postgres) or run as another user"
    as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
    chown postgres: "$dir"
    "${as_pg[@]}" test -x "$dir" ||
      die "the postgres user cannot reach $dir: set TEMPORAL_PG_DIR to a folder whose parents it may enter"
  fi

  # Ports are kept with the data: a restarted server finds its cluster's members where they were.
  if [ ! -s "$dir/ports" ]; then free_ports 9 >"$dir/ports.tmp" && mv "$dir/ports.tmp" "$dir/ports"; fi
  local p
  mapfile -t p <"$dir/ports"
  local pg_port="${p[0]}"

  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    mkdir -p "$dir/data"
    [ ${#as_pg[@]} -eq 0 ] || chown postgres: "$dir/data"
    "${as_pg[@]}" "$pg_bin/initdb" -D "$dir/data" -U temporal --auth=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
      die "initdb failed; see $dir/initdb.log"
  fi
  # synchronous_commit stays on (PostgreSQL's default, as in production): a commit is on disk before
  # Temporal acknowledges it. With it off, a commit waits in PostgreSQL's shared memory for the WAL
  # writer (up to 600 ms), and a SIGKILL of the server loses it: 3 of 8 ensures answered `pending`
  # right before a kill came back without their update (issue 35 §10). fdatasync costs ~0.1 ms here.
  "${as_pg[@]}" "$pg_bin/postgres" -D "$dir/data" -p "$pg_port" -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
    -c max_connections=300 -c log_checkpoints=off &
  local pg_pid=$! server_pid=
  stop_all() {
    trap - TERM INT
    [ -z "$server_pid" ] || { kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid"; }
    kill -INT "$pg_pid" 2>/dev/null # fast shutdown
    wait "$pg_pid"
    exit 0
  }
  trap stop_all TERM INT
  local i
  for ((i = 0; i < 600; i++)); do
    # Ready when the lock file is this postmaster's (not one left by a killed one) and says so.
    [ "$(sed -n '1p;8p' "$dir/data/postmaster.pid" 2>/dev/null | tr -d ' ' | paste -sd' ')" = "$pg_pid ready" ] && break
    kill -0 "$pg_pid" 2>/dev/null || die "PostgreSQL did not start (see the lines above)"
    sleep 0.1
  done

  local sql=("$server_dir/temporal-sql-tool" --plugin postgres12 --ep 127.0.0.1 -p "$pg_port" -u temporal)
  if [ ! -f "$dir/schema-$TEMPORAL_SERVER_VERSION" ]; then
    local db schema
    for db in temporal temporal_visibility; do
      schema=temporal
      [ $db = temporal ] || schema=visibility
      "${sql[@]}" --db $db create-database >/dev/null 2>&1 || true # there already after a crash in between
      "${sql[@]}" --db $db setup-schema -v 0.0 >"$dir/schema.log" 2>&1 &&
        "${sql[@]}" --db $db update-schema --schema-name "postgresql/v12/$schema" >>"$dir/schema.log" 2>&1 ||
        { kill -INT "$pg_pid"; die "setting up the $db schema failed; see $dir/schema.log"; }
    done
    touch "$dir/schema-$TEMPORAL_SERVER_VERSION"
  fi

  mkdir -p "$dir/config"
  printf '%s\n' "${dynamic[@]}" >"$dir/dynamicconfig.yaml"
  local store
  store() { # name database maxConns
    cat <<YAML
    $1:
      sql:
        pluginName: postgres12
        databaseName: $2
        connectAddr: "127.0.0.1:$pg_port"
        connectProtocol: tcp
        user: temporal
        password: ""
        maxConns: $3
        maxIdleConns: $3
        maxConnLifetime: 1h
YAML
  }
  cat >"$dir/config/postgres.yaml" <<YAML
log:
  stdout: true
  level: ${TEMPORAL_LOG_LEVEL:-warn}
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:
$(store default temporal 20)
$(store visibility temporal_visibility 10)
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
services:
  frontend:
    rpc: { grpcPort: $port, membershipPort: ${p[1]}, httpPort: ${p[2]}, bindOnLocalHost: true }
  history:
    rpc: { grpcPort: ${p[3]}, membershipPort: ${p[4]}, bindOnLocalHost: true }
  matching:
    rpc: { grpcPort: ${p[5]}, membershipPort: ${p[6]}, bindOnLocalHost: true }
  worker:
    rpc: { grpcPort: ${p[7]}, membershipPort: ${p[8]}, bindOnLocalHost: true }
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active: { enabled: true, initialFailoverVersion: 1, rpcName: frontend, rpcAddress: "127.0.0.1:$port" }
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: $dir/dynamicconfig.yaml
  pollInterval: 10s
YAML

  log "Temporal server v$TEMPORAL_SERVER_VERSION on PostgreSQL on 127.0.0.1:$port, data $dir (no Web UI)"
  "$server_dir/temporal-server" --root "$dir" --config config --env postgres --allow-no-auth start &
  server_pid=$!

  # The server has no namespace of its own: create `default` and the search attributes once.
  if [ ! -f "$dir/registered" ]; then
    local sa_args=() sa
    for sa in "${SEARCH_ATTRIBUTES[@]}"; do sa_args+=(--name "${sa%%=*}" --type "${sa#*=}"); done
    for ((i = 0; ; i++)); do
      if "$cli" operator namespace describe --address "127.0.0.1:$port" --namespace default >/dev/null 2>&1 ||
        "$cli" operator namespace create --address "127.0.0.1:$port" --namespace default --retention 72h >/dev/null 2>&1; then
        if "$cli" operator search-attribute create --address "127.0.0.1:$port" --namespace default "${sa_args[@]}" >/dev/null 2>&1; then
          touch "$dir/registered"
          break
        fi
      fi
      kill -0 "$server_pid" 2>/dev/null || break
      [ $i -lt 120 ] || { log "could not register the namespace and search attributes within a minute"; break; }
      sleep 0.5
    done
  fi

  local rc=0
  wait "$server_pid" || rc=$?
  server_pid=
  kill -INT "$pg_pid" 2>/dev/null
  wait "$pg_pid" || true
  exit "$rc"
}

postgres_mode() { [ "${TEMPORAL_PERSISTENCE:-sqlite}" = postgres ]; }
case "${TEMPORAL_PERSISTENCE:-sqlite}" in
  sqlite | postgres) ;;
  *) die "TEMPORAL_PERSISTENCE must be sqlite (the dev server) or postgres, not '$TEMPORAL_PERSISTENCE'" ;;
esac

FORCE_INSTALL=0
case "${1:-}" in
  install)
    case "${2:-}" in
      --force) FORCE_INSTALL=1 ;;
      "") ;;
      *) die "unknown option '$2' (use: install --force)" ;;
    esac
    if postgres_mode; then find_server >/dev/null && find_postgres >/dev/null; fi; find_cli ;;
  "") if postgres_mode; then start_postgres; else start; fi ;;
  start) shift; if postgres_mode; then start_postgres "$@"; else start "$@"; fi ;;
  -h | --help | help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (use: install, or no argument to start the server)" ;;
esac
