#!/usr/bin/env bash
# README's test command: installs what the tests need when it is missing (scripts/test-deps.sh:
# Debian's chromium and postgresql, playwright-core from npm, Nango's catalogue through npm,
# schemathesis from PyPI), starts a throwaway PostgreSQL cluster on 127.0.0.1 (scripts/pg.sh,
# under target/pg), runs every test of the workspace, then the server's suite again on
# PostgreSQL. Extra arguments go to `cargo test`. At the end it lists the checks the run could
# not make (those that need ../shared/ beside the repository, which a bare clone lacks; under
# CI, where it is always there, its absence fails them instead).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each test appends a line per check it could not make (keyway_tests::unmade_check).
unmade=target/unmade-checks.txt
mkdir -p target
: >"$unmade"
list_unmade() {
  if [ -s "$unmade" ]; then
    printf '\n== Checks NOT made in this run (they need ../shared/; under CI each is a failure):\n'
    sort -u "$unmade" | sed 's/^/  - /'
  fi
}
# On every exit, so a failing run lists them too.
trap list_unmade EXIT

scripts/test-deps.sh
eval "$(scripts/pg.sh start)"
cargo test --workspace "$@"
echo "== keyway-server's suite on PostgreSQL ($KEYWAY_TEST_POSTGRES_URL)"
KEYWAY_TEST_BACKEND=postgres cargo test -p keyway-server "$@"
