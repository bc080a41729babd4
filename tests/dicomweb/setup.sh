#!/usr/bin/env bash
# Install the DICOMweb client used by tests/tests/dicomweb.rs (tests/dicomweb/roundtrip.py with
# the packages pinned in tests/dicomweb/requirements.txt) under target/dicomweb-venv, or
# $YILIAN_DICOMWEB_VENV. The test runs $venv/bin/python.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec bash "$root/tests/python/venv.sh" "dicomweb client" "${YILIAN_DICOMWEB_VENV:-$root/target/dicomweb-venv}" \
    "$root/tests/dicomweb/requirements.txt" "$root/tests/dicomweb/roundtrip.py"
