#!/usr/bin/env bash
# Local Temporal dev server for this project (CONTRACT §6, §8).
#
#   ./temporal-dev.sh            start `temporal server start-dev` in the foreground, with the
#                                project's search attributes registered
#   ./temporal-dev.sh install    only make sure the CLI exists; print its absolute path on stdout
#
# Environment: TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233; 0 = no UI), TEMPORAL_HEADLESS=1,
# TEMPORAL_DB_FILE (<repo>/.dev/temporal.db), TEMPORAL_CACHE_DIR (<repo>/.cache/temporal-bin).
# The CLI is looked up as: `temporal` on PATH, then $TEMPORAL_CACHE_DIR/temporal, then built with
# `go install`, then downloaded from the official release.
set -euo pipefail

TEMPORAL_CLI_VERSION=1.5.1
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
  if onpath="$(command -v temporal 2>/dev/null)"; then
    absolute "$onpath"
    return
  fi
  if [ -x "$CACHE_DIR/temporal" ]; then
    absolute "$CACHE_DIR/temporal"
    return
  fi
  mkdir -p "$CACHE_DIR"
  if command -v go >/dev/null 2>&1; then
    install_with_go || log "go install failed; trying the release download"
  fi
  if [ ! -x "$CACHE_DIR/temporal" ]; then
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

case "${1:-}" in
  install) find_cli ;;
  "") start ;;
  start) shift; start "$@" ;;
  -h | --help | help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (use: install, or no argument to start the server)" ;;
esac
