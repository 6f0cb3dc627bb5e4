#!/usr/bin/env bash
# Screenshots of keyway serve's guide page (GET /guide/{profile}), taken by the real-browser
# test: installs what it needs (scripts/test-deps.sh), runs
# crates/cli/tests/it/serve_guide_browser.rs (Publish Knowledge Article ticked, sandbox, PKCE
# off), and prints where the PNGs are, for a person (or a session with an image viewer) to
# judge the page at desktop and phone width.
#
#   usage: scripts/screenshot-guide-page.sh
#   output: target/screenshots/guide-page.png (1280 px, full page), guide-page-phone.png
#           (390 px, full page), and screen-sized views: guide-page-{top,security,refused}.png,
#           guide-page-phone-{top,summary,security}.png
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-deps.sh
cargo test -p keyway --test it serve_guide_browser:: -- --nocapture

shots=${CARGO_TARGET_DIR:-target}/screenshots
for name in guide-page guide-page-phone guide-page-top guide-page-security guide-page-refused guide-page-phone-top \
  guide-page-phone-summary guide-page-phone-security; do
  printf '%s\n' "$shots/$name.png"
done
