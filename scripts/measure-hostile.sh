#!/usr/bin/env bash
# Worst-case time and peak memory of `keyway validate` on 8 MiB profiles of each hostile shape
# (made here, under target/hostile, never committed). Needs a release build:
#   cargo build --release -p keyway && scripts/measure-hostile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/hostile
rm -rf "$out" && mkdir -p "$out"
python3 - "$out" <<'PY'
import os, random, sys
out = sys.argv[1]
size = 8 * 1024 * 1024 - 4096
head = """id: {id}
name: Hostile
environments:
  production: {{label: Production, default: true, vars: {{host: login.example.com}}}}
auth:
  grants: [authorization_code]
  endpoints: {{authorize: "https://{{{{ env.host }}}}/a", token: "https://{{{{ env.host }}}}/t"}}
  pkce: required
  default_scopes: [read]
scopes:
  read: {{label: Read}}
"""
def write(name, body):
    text = head.format(id=name) + body
    with open(os.path.join(out, name, name + ".yaml"), "w") as f:
        f.write(text[:size] if len(text) > size else text)
shapes = {}
rnd = random.Random(7)
def fill(line_fn):
    parts, n, i = [], 0, 0
    while n < size - 2048:
        line = line_fn(i); parts.append(line); n += len(line); i += 1
    return "".join(parts)
shapes["unknown-keys"] = fill(lambda i: "x_%d_%s: 1\n" % (i, "".join(rnd.choice("abcdefghij") for _ in range(1000))))
shapes["long-unknown-key"] = "x_" + "a" * (size - 4096) + ": 1\n"
shapes["flow-sequence"] = "guide_flow: [" + ", ".join(["a"] * ((size - 4096) // 3)) + "]\n"
shapes["long-string"] = "description: \"" + "a" * (size - 4096) + "\"\n"
shapes["template-tags"] = "guide:\n  sections:\n    s:\n      title: T\n      steps:\n        t:\n          title: \"" + ("{{ 1 + 1 + 1 }}" * ((size - 4096) // 15)) + "\"\n"
shapes["template-one-tag"] = "guide:\n  sections:\n    s:\n      title: T\n      steps:\n        t:\n          title: \"{{ 1" + (" + 1" * ((size - 4096) // 4)) + " }}\"\n"
shapes["tags-yaml"] = fill(lambda i: "k%d: !!str v\n" % i)
shapes["deep-maps"] = "".join("%sk:\n" % (" " * i) for i in range(2000)) 
shapes["actions"] = "actions:\n" + fill(lambda i: "  a_%d: {name: A %d, method: GET, path: /a, scopes: [read]}\n" % (i, i))
for name, body in shapes.items():
    if not body: continue
    os.makedirs(os.path.join(out, name), exist_ok=True)
    write(name, body)
# A long extends chain: 8 MiB over many files.
os.makedirs(os.path.join(out, "extends-chain"), exist_ok=True)
with open(os.path.join(out, "extends-chain", "c0.yaml"), "w") as f:
    f.write(head.format(id="c0"))
i, n = 1, 0
while n < size:
    text = "id: c%d\nextends: c%d\nname: \"%s\"\n" % (i, i - 1, "n" * 800)
    with open(os.path.join(out, "extends-chain", "c%d.yaml" % i), "w") as f:
        f.write(text)
    n += len(text); i += 1
PY
printf '%-18s %10s %10s %8s  %s\n' shape bytes seconds MiB "first diagnostic"
for dir in "$out"/*/; do
  shape=$(basename "$dir")
  bytes=$(cat "$dir"/*.yaml | wc -c)
  /usr/bin/time -f '%e %M' -o "$out/$shape.time" target/release/keyway validate --profiles "$dir" > "$out/$shape.out" 2>&1 || true
  read -r seconds kib < <(tail -n1 "$out/$shape.time")
  first=$(grep -m1 -o 'error\[KW[0-9]*\][^|]*' "$out/$shape.out" | cut -c1-70 || true)
  printf '%-18s %10s %10s %8s  %s\n' "$shape" "$bytes" "$seconds" "$((kib / 1024))" "$first"
done
