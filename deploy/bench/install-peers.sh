#!/usr/bin/env bash
# Install the peers the benchmark runner measures Yilian against (docs/benchmarks.md), from
# Debian's packages: etcd 3.4 (etcd-server, etcd-client), Orthanc 1.10 with its DICOMweb plugin,
# and DCMTK (storescu, storescp, dcmqrscp, getscu). Run as root. The runner itself never installs anything.
set -euo pipefail
packages=(etcd-server etcd-client orthanc orthanc-dicomweb dcmtk)
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: sudo bash $0" >&2
    exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}"
# The orthanc and etcd packages register system services; the benchmarks start their own
# instances on loopback with temporary data directories, so stop the packaged ones if running.
for service in orthanc etcd; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
        systemctl stop "$service"
    fi
done
echo "benchmark peers installed: ${packages[*]}"
