#!/usr/bin/env bash
# Renders the all-34-actions Salesforce Service Cloud setup guide (sandbox) as a standalone
# HTML page and takes a PNG screenshot of it with headless Chromium, so a person (or a
# session with an image viewer) can judge how the page reads: layout, callouts, code spans,
# headings.
#
#   usage: scripts/screenshot-guide.sh
#   output: target/guide/guide.html and target/guide/guide.png
#
# Installs Debian's chromium package when /usr/bin/chromium is missing (needs root, as on the
# project's machines). The page has no external assets, and Chromium runs with networking
# features off, so the screenshot needs no network.
#
# GUIDE_WIDTH and GUIDE_HEIGHT (default 1200 and 12800) set the window, which is also the
# screenshot's size: headless Chromium shoots the window, not the whole page, so a taller page
# is cut at GUIDE_HEIGHT and a shorter one is padded with the page background. At 1200 px wide
# this guide is about 12,100 px tall (a 6000 px window shows only down to the security
# settings).
set -euo pipefail
cd "$(dirname "$0")/.."

width=${GUIDE_WIDTH:-1200}
height=${GUIDE_HEIGHT:-12800}

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

# Every Service Cloud action: the 34 names of seed 001, as ids (`Create Case` -> create_case).
actions=$(tr 'A-Z ' 'a-z_' <tests/fixtures/seed-001-actions.txt | paste -sd, -)
count=$(tr ',' '\n' <<<"$actions" | grep -c .)
if [ "$count" != 34 ]; then
  echo "expected 34 Service Cloud actions, found $count" >&2
  exit 1
fi

mkdir -p target/guide
cargo run -q -p keyway -- guide salesforce-service-cloud \
  --actions "$actions" \
  --env sandbox \
  --callback-url https://app.example.com/oauth/callback \
  --format html >target/guide/guide.html

profile_dir=$(mktemp -d)
trap 'rm -rf "$profile_dir"' EXIT
rm -f target/guide/guide.png
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile_dir" --hide-scrollbars --window-size="$width,$height" \
  --screenshot="$PWD/target/guide/guide.png" "file://$PWD/target/guide/guide.html" 2>target/guide/chromium.log || {
  cat target/guide/chromium.log >&2
  exit 1
}
if [ ! -s target/guide/guide.png ]; then
  echo "chromium wrote no screenshot" >&2
  cat target/guide/chromium.log >&2
  exit 1
fi
echo "target/guide/guide.html, target/guide/guide.png (${width}x${height})"
