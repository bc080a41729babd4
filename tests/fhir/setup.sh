#!/usr/bin/env bash
# Install the FHIR R4 validator used by tests/tests/fhir_facade.rs and audit_trail.rs
# (tests/fhir/validate_fhir.py with the packages pinned in tests/fhir/requirements.txt) under
# target/fhir-venv, or $YILIAN_FHIR_VENV. The tests run $venv/bin/python.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec bash "$root/tests/python/venv.sh" "fhir validator" "${YILIAN_FHIR_VENV:-$root/target/fhir-venv}" \
    "$root/tests/fhir/requirements.txt" "$root/tests/fhir/validate_fhir.py"
