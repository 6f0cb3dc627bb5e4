#!/usr/bin/env bash
# Checks the bundled profiles against schemas/profile.schema.json with an independent
# JSON Schema implementation (check-jsonschema, Python), so the schema is not only
# understood by the Rust crate that keyway itself uses. Also checks that it rejects a known
# bad profile, so this check can fail.
#
#   usage: scripts/check-schema-independently.sh
#
# Installs check-jsonschema into target/venv-schema (from PyPI) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/venv-schema
version=0.39.0
if ! "$venv/bin/check-jsonschema" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "check-jsonschema==$version"
fi
"$venv/bin/check-jsonschema" --schemafile schemas/profile.schema.json profiles/*.yaml
for bad in tests/fixtures/schema-rejects/*.yaml; do
  if "$venv/bin/check-jsonschema" --schemafile schemas/profile.schema.json "$bad" >/dev/null 2>&1; then
    echo "check-jsonschema accepted $bad, which the schema must reject" >&2
    exit 1
  fi
done
echo "independent schema check: profiles accepted, $(ls tests/fixtures/schema-rejects/*.yaml | wc -l) bad fixtures rejected"
