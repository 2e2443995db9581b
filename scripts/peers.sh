#!/usr/bin/env bash
# Installs the peer systems (faiss-cpu, hnswlib, numpy) into a venv under $DRIFT_TOOLS
# (default ~/.cache/drift-tools/peers), once; `drift bench` and the lab find it there.
# scripts/test.sh does the same as part of its set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/tools.sh
source scripts/tools.sh
install_peers
echo "peers ready: $DRIFT_PEER_PYTHON"
