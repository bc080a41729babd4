#!/usr/bin/env bash
# Install the DICOMweb client used by tests/tests/dicomweb.rs (tests/dicomweb/roundtrip.py with
# the packages pinned in tests/dicomweb/requirements.txt) under target/dicomweb-venv, or
# $YILIAN_DICOMWEB_VENV. The test runs $venv/bin/python. Safe to run again: an up-to-date
# install is left alone. Needs python3 (3.9+) with pip, and access to the Python package registry.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${YILIAN_DICOMWEB_VENV:-$root/target/dicomweb-venv}"
reqs="$root/tests/dicomweb/requirements.txt"
script="$root/tests/dicomweb/roundtrip.py"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.txt"
pip_flags=(--quiet --disable-pip-version-check --no-input)

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$reqs" "$stamp" \
    && "$venv/bin/python" "$script" --self-check >/dev/null 2>&1; then
    echo "dicomweb client up to date: $venv/bin/python"
    exit 0
fi

rm -rf "$venv"
if "$python" -m venv "$venv" >/dev/null 2>&1 && [ -x "$venv/bin/python" ]; then
    "$venv/bin/python" -m pip install "${pip_flags[@]}" -r "$reqs"
else
    # No venv module (e.g. Debian without python3-venv): install into a plain directory and
    # give it a python wrapper that puts that directory on the path.
    echo "python3 -m venv is unavailable; installing with pip --target instead" >&2
    rm -rf "$venv"
    mkdir -p "$venv/bin"
    "$python" -m pip install "${pip_flags[@]}" --target "$venv/site" -r "$reqs"
    interpreter="$(command -v "$python")"
    cat >"$venv/bin/python" <<WRAP
#!/bin/sh
PYTHONPATH="$venv/site\${PYTHONPATH:+:\$PYTHONPATH}" exec "$interpreter" "\$@"
WRAP
    chmod +x "$venv/bin/python"
fi

"$venv/bin/python" "$script" --self-check
cp "$reqs" "$stamp"
echo "dicomweb client installed: $venv/bin/python"
