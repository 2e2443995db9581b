#!/usr/bin/env bash
# The project's one test command (README, CI). Installs what the tests need, idempotently,
# then runs every test of the workspace. Today the tests need only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
cargo test --workspace --no-fail-fast "$@"
