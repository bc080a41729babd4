#!/usr/bin/env bash
# Install DCMTK (storescu, echoscu), the DICOM peer used by dicom/tests/dimse.rs, from the
# Debian package `dcmtk`. Safe to run again: an existing install is left alone. Needs root (or
# sudo) and apt-get with access to the Debian package archive.
set -euo pipefail

if command -v storescu >/dev/null 2>&1 && command -v echoscu >/dev/null 2>&1; then
    echo "dcmtk present: $(command -v storescu)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/dicom/setup.sh: DCMTK (storescu, echoscu) is missing and apt-get is not available;" >&2
    echo "install DCMTK 3.6 with this system's package manager and put storescu on PATH" >&2
    exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "tests/dicom/setup.sh: DCMTK is missing and installing it needs root; run this script as root" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -qq; then
    echo "tests/dicom/setup.sh: 'apt-get update' failed; check network access to the Debian archive" >&2
    exit 1
fi
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends dcmtk; then
    echo "tests/dicom/setup.sh: 'apt-get install dcmtk' failed; see the apt output above" >&2
    exit 1
fi
if ! command -v storescu >/dev/null 2>&1; then
    echo "tests/dicom/setup.sh: dcmtk was installed but storescu is not on PATH ($PATH)" >&2
    exit 1
fi
echo "dcmtk installed: $(command -v storescu)"
