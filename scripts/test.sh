#!/usr/bin/env bash
# README's test command: installs what the tests need when it is missing (scripts/test-deps.sh:
# Debian's chromium, playwright-core from npm, schemathesis from PyPI, all under target/ but
# chromium), then runs every test of the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
cargo test --workspace "$@"
