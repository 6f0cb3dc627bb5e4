#!/usr/bin/env bash
# Screenshots of keyway serve's hosted pages, taken by the real-browser test: installs what it
# needs (scripts/test-deps.sh), runs crates/cli/tests/it/serve_browser.rs, and prints where the
# PNGs are, for a person (or a session with an image viewer) to judge the pages.
#
#   usage: scripts/screenshot-connect.sh
#   output: target/screenshots/{connect,connect-details,connect-phone,consent,done,done-phone}.png
#           and the API-key form's in target/screenshots/api-key/ (also connect-refused{,-phone}.png)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-deps.sh
cargo test -p keyway --test it serve_browser:: -- --nocapture

shots=${CARGO_TARGET_DIR:-target}/screenshots
for name in connect connect-details connect-phone consent "done" done-phone; do
  printf '%s\n' "$shots/$name.png"
done
for name in connect connect-details connect-phone connect-refused connect-refused-phone "done" done-phone; do
  printf '%s\n' "$shots/api-key/$name.png"
done
