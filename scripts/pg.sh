#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks: under target/pg, listening on
# 127.0.0.1 only (trust authentication, so never anywhere else), from Debian's postgresql
# package (scripts/test-deps.sh installs it).
#
#   usage: scripts/pg.sh start    starts it (initialising it the first time); prints
#                                 `export KEYWAY_TEST_POSTGRES_URL=...` and
#                                 `export KEYWAY_TEST_POSTGRES_DATA=...` for eval
#          scripts/pg.sh stop     stops it
#          scripts/pg.sh status
#   env:   KEYWAY_PG_PORT (default 54329), KEYWAY_PG_DIR (default target/pg)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${KEYWAY_PG_DIR:-$root/target/pg}
port=${KEYWAY_PG_PORT:-54329}
say() { printf 'pg: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$bin" ] && [ -x "$bin/initdb" ] || die "PostgreSQL is not installed: run scripts/test-deps.sh postgresql"

# The server refuses to run as root: as root, run it as the `postgres` user the package made.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

data=$dir/data
case "${1:-}" in
  start)
    if [ ! -f "$data/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres "$dir"
      say "initialising a cluster in $data"
      as_pg "$bin/initdb" -D "$data" -U keyway --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
        die "initdb failed: see $dir/initdb.log"
    fi
    if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      say "starting on 127.0.0.1:$port"
      as_pg "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=300 -c fsync=on" \
        start >/dev/null || die "the server did not start: see $dir/server.log"
    fi
    echo "export KEYWAY_TEST_POSTGRES_URL=postgres://keyway@127.0.0.1:$port/postgres"
    echo "export KEYWAY_TEST_POSTGRES_DATA=$data"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
    ;;
  status)
    as_pg "$bin/pg_ctl" -D "$data" status
    ;;
  *)
    die "usage: scripts/pg.sh start|stop|status"
    ;;
esac
