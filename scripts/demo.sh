#!/usr/bin/env bash
# Tries `keyway serve` end to end on one machine, no Salesforce org needed: a local
# Salesforce-like test provider (keyway-testkit, with a consent page) and the hub in front of
# it. Prints a connect link to open in a browser and the curl commands that read the token.
# Ctrl-C stops both.
#
#   usage: scripts/demo.sh
#   env:   KEYWAY_DEMO_LISTEN   where the hub listens (default 127.0.0.1:8080; port 0 picks one)
#
# Everything lives in target/demo/, started afresh each run (the test provider picks a new
# port, so connections of an earlier run could not refresh anyway): profiles/, hub.db and its
# development key file hub.db.keys, and the two logs.
set -euo pipefail
cd "$(dirname "$0")/.."

listen=${KEYWAY_DEMO_LISTEN:-127.0.0.1:8080}
demo=target/demo
bin=${CARGO_TARGET_DIR:-target}/debug

say() { printf 'demo: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed (to read JSON)"
# json FIELD: a top-level field of the JSON document on stdin.
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

say "building keyway and keyway-testkit"
cargo build -q -p keyway -p keyway-testkit --bins

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# wait_line FILE PATTERN PID: the first line of FILE matching PATTERN, once the process writes it.
wait_line() {
  local file=$1 pattern=$2 pid=$3 line
  for _ in $(seq 1 300); do
    line=$(grep -m1 -e "$pattern" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then
      printf '%s\n' "$line"
      return
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

rm -rf "$demo"
mkdir -p "$demo"

"$bin/keyway-testkit" --profiles-out "$demo/profiles" >"$demo/testkit.out" 2>"$demo/testkit.log" &
pids+=($!)
provider=$(wait_line "$demo/testkit.out" '^{' "${pids[-1]}") ||
  die "the test provider did not start: $(cat "$demo/testkit.log")"
field() { json "$1" <<<"$provider"; }
say "test provider at $(field base_url) (profile $(field profile), environment $(field environment))"

# --allow-private-network: the test provider listens on this machine's loopback.
"$bin/keyway" --profiles "$demo/profiles" serve --dev --allow-private-network --db "sqlite://$demo/hub.db" --listen "$listen" \
  >"$demo/hub.out" 2>"$demo/hub.log" &
pids+=($!)
line=$(wait_line "$demo/hub.out" 'listening on' "${pids[-1]}") || die "keyway serve did not start: $(cat "$demo/hub.log")"
hub=${line##* }
say "keyway serve at $hub (log: $demo/hub.log)"

key=$("$bin/keyway" keys api create --db "sqlite://$demo/hub.db" --name demo 2>/dev/null)
api() {
  local method=$1 path=$2 extra=()
  [ $# -lt 3 ] || extra=(-H 'Content-Type: application/json' --data "$3")
  curl -sS --fail-with-body -X "$method" "$hub$path" -H "Authorization: Bearer $key" "${extra[@]}"
}

integration=$(api POST /v1/integrations "$(
  python3 -c 'import json, sys; p = json.loads(sys.argv[1]); print(json.dumps({
    "profile": p["profile"], "name": "Salesforce (demo)", "client_id": p["client_id"],
    "client_secret": p["client_secret"], "environment": p["environment"],
    "actions": ["list_accounts"]}))' "$provider"
)") || die "creating the integration failed: $integration"
session_body='{"end_user":{"id":"demo-user","email":"ada@example.com","display_name":"Ada Lovelace"}}'
session=$(api POST /v1/connect/sessions "$session_body") || die "creating the connect session failed: $session"
connect_url=$(json connect_url <<<"$session")

cat <<EOF

  Integration $(json id <<<"$integration") (salesforce-local, environment local) is ready.

  Open this link in a browser (single use, valid 30 minutes), click Continue, then Allow:

    $connect_url

  Then, in another terminal:

    export KEY=$key
    curl -s $hub/v1/connections -H "Authorization: Bearer \$KEY"
    curl -s $hub/v1/connections/CONNECTION_ID/token -H "Authorization: Bearer \$KEY"
    curl -s -X DELETE $hub/v1/connections/CONNECTION_ID -H "Authorization: Bearer \$KEY"

  A new connect link:

    curl -s -X POST $hub/v1/connect/sessions -H "Authorization: Bearer \$KEY" \\
      -H 'Content-Type: application/json' -d '$session_body'

  Ctrl-C stops the hub and the test provider.
EOF
printf 'connect_url=%s\n' "$connect_url"

# Until Ctrl-C, or until either process ends.
wait -n "${pids[@]}" || true
say "a process ended; stopping"
