#!/usr/bin/env bash
# Install a Python test peer into its own venv, shared by tests/fhir/setup.sh and
# tests/dicomweb/setup.sh. Usage: venv.sh <label> <venv dir> <requirements.txt> <script>
# The script must answer `--self-check`. Safe to run again: an install whose pinned requirements
# match and whose self-check passes is left alone. Needs python3 (3.9+) with pip, and access to the
# Python package registry; $PYTHON picks another interpreter.
set -euo pipefail
label="$1"
venv="$2"
reqs="$3"
script="$4"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.txt"
pip_flags=(--quiet --disable-pip-version-check --no-input)

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$reqs" "$stamp" \
    && "$venv/bin/python" "$script" --self-check >/dev/null 2>&1; then
    echo "$label up to date: $venv/bin/python"
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
echo "$label installed: $venv/bin/python"
