#!/usr/bin/env bash
# The project's one test command (README, CI). Installs what the tests need, idempotently
# (scripts/tools.sh: s3s-fs and the tansu Kafka broker from crates.io, into $DRIFT_TOOLS),
# starts them on free loopback ports for the length of the run, then runs every test of the
# workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
# shellcheck source=scripts/tools.sh
source scripts/tools.sh
install_tools
trap stop_services EXIT
start_s3
start_kafka
# Incremental state only pays off for repeated edits; a one-shot run saves its gigabytes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --workspace --no-fail-fast "$@"
