#!/usr/bin/env bash
# README's test command: installs what the tests need when it is missing (scripts/test-deps.sh:
# Debian's chromium and postgresql, playwright-core from npm, schemathesis from PyPI), starts a
# throwaway PostgreSQL cluster on 127.0.0.1 (scripts/pg.sh, under target/pg), runs every test of
# the workspace, then the server's suite again on PostgreSQL. Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
eval "$(scripts/pg.sh start)"
cargo test --workspace "$@"
echo "== keyway-server's suite on PostgreSQL ($KEYWAY_TEST_POSTGRES_URL)"
KEYWAY_TEST_BACKEND=postgres cargo test -p keyway-server "$@"
