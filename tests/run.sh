#!/usr/bin/env bash
# The project's test command (README "Test it"; CI runs it through .ci/run): install the test
# peers the suite needs, then run every test of the workspace. Extra arguments go to cargo test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash tests/fhir/setup.sh
bash tests/dicomweb/setup.sh
bash tests/dicom/setup.sh
cargo test --workspace --locked "$@"
