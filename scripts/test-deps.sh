#!/usr/bin/env bash
# Installs what the tests beyond `cargo test`'s own crates need, when it is missing; safe to
# run again (each step checks first and does nothing when its dependency is there).
#
#   usage: scripts/test-deps.sh [DEPENDENCY...]     (default: all of them)
#
# Dependencies (one function each, `dep_NAME`; add one by writing the function and naming it
# in ALL below):
#   chromium         Debian's chromium package (/usr/bin/chromium), for the browser test
#                    (crates/cli/tests/it/serve_browser.rs). Uses apt-get, through sudo when not root.
#   playwright-core  the npm package, at the version pinned by
#                    crates/cli/tests/browser/package-lock.json, installed with `npm ci` into
#                    target/node (KEYWAY_NODE_DIR overrides). Needs node and npm (Node.js 20+).
#                    Playwright's own browser download (`npx playwright install`) is never used:
#                    the tests drive Debian's chromium.
#   nango-corpus     Nango's provider catalogue (pinned, sha256-checked), fetched from the npm
#                    registry by scripts/fetch-nango.sh into target/corpus/nango, for the importer's
#                    test on the real corpus (crates/import/tests/it/nango.rs). Needs npm.
#   postgresql       Debian's postgresql package (server binaries under /usr/lib/postgresql),
#                    for the server suite on PostgreSQL; scripts/pg.sh runs a throwaway
#                    cluster from it under target/pg.
#   schemathesis     the PyPI package, pinned below, in a virtual environment at target/venv
#                    (KEYWAY_VENV overrides), for the API fuzz test
#                    (crates/cli/tests/it/serve_api_fuzz.rs). Needs python3 with venv.
#
# Nothing is installed into the repository outside target/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

ALL=(chromium playwright-core nango-corpus postgresql schemathesis)
SCHEMATHESIS_VERSION=4.32.5

say() { printf 'test-deps: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

# Runs a command as root: directly when root, else through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "not root and no sudo: cannot run $*"
  fi
}

apt_updated=
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand (a Debian or Ubuntu machine is expected)"
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -q
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

dep_chromium() {
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  # A font, or the screenshots show boxes for text (chromium only recommends one).
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
  if [ ${#missing[@]} = 0 ]; then
    say "chromium: present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
    return
  fi
  say "chromium: installing Debian's ${missing[*]}"
  apt_install "${missing[@]}"
  [ -x /usr/bin/chromium ] || die "chromium: installed, but /usr/bin/chromium is missing"
}

dep_playwright_core() {
  local spec_dir=crates/cli/tests/browser
  local dir=${KEYWAY_NODE_DIR:-$root/target/node}
  command -v node >/dev/null || die "playwright-core: node is not installed (Node.js 20 or later is needed)"
  command -v npm >/dev/null || die "playwright-core: npm is not installed"
  local want
  want=$(node -e 'process.stdout.write(require(process.argv[1]).packages["node_modules/playwright-core"].version)' \
    "$root/$spec_dir/package-lock.json")
  local have=
  if [ -f "$dir/node_modules/playwright-core/package.json" ]; then
    have=$(node -e 'process.stdout.write(require(process.argv[1]).version)' "$dir/node_modules/playwright-core/package.json")
  fi
  if [ "$have" = "$want" ] && cmp -s "$spec_dir/package-lock.json" "$dir/package-lock.json"; then
    say "playwright-core: present ($have in $dir)"
    return
  fi
  say "playwright-core: installing $want into $dir"
  mkdir -p "$dir"
  cp "$spec_dir/package.json" "$spec_dir/package-lock.json" "$dir/"
  # No browser download: the tests use /usr/bin/chromium.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
}

dep_nango_corpus() {
  local dir=$root/target/corpus/nango
  if [ -f "$dir/providers.yaml" ] && [ -f "$dir/providers.scopes.yaml" ]; then
    say "nango-corpus: present ($dir)"
    return
  fi
  command -v npm >/dev/null || die "nango-corpus: npm is not installed (scripts/fetch-nango.sh fetches the catalogue with it)"
  say "nango-corpus: fetching Nango's catalogue into $dir"
  scripts/fetch-nango.sh "$dir" >/dev/null
}

dep_postgresql() {
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    say "postgresql: present ($(ls -d /usr/lib/postgresql/*/ | xargs -n1 basename | tr '\n' ' '))"
    return
  fi
  say "postgresql: installing Debian's postgresql"
  apt_install postgresql
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || die "postgresql: installed, but no initdb under /usr/lib/postgresql"
}

dep_schemathesis() {
  local venv=${KEYWAY_VENV:-$root/target/venv}
  if [ -x "$venv/bin/schemathesis" ] && [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" = "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    say "schemathesis: present ($SCHEMATHESIS_VERSION in $venv)"
    return
  fi
  command -v python3 >/dev/null || die "schemathesis: python3 is not installed"
  if ! python3 -m venv --help >/dev/null 2>&1; then
    say "schemathesis: installing Debian's python3-venv"
    apt_install python3-venv
  fi
  say "schemathesis: installing $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

deps=("$@")
[ ${#deps[@]} -gt 0 ] || deps=("${ALL[@]}")
for dep in "${deps[@]}"; do
  fn="dep_${dep//-/_}"
  declare -F "$fn" >/dev/null || die "unknown dependency \`$dep\` (known: ${ALL[*]})"
  "$fn"
done
say "ready: ${deps[*]}"
