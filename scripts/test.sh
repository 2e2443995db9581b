#!/usr/bin/env bash
# The project's one test command (README, CI). Installs what the tests need, idempotently,
# starts it, then runs every test of the workspace:
#   - s3s-fs, an S3-compatible server from crates.io, for the s3:// storage tests
#     (installed into $DRIFT_TOOLS, default ~/.cache/drift-tools; started on a free
#     loopback port for the length of the run).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }

TOOLS="${DRIFT_TOOLS:-$HOME/.cache/drift-tools}"
S3S="$TOOLS/bin/s3s-fs"
if [ ! -x "$S3S" ]; then
  echo "installing s3s-fs 0.14.1 into $TOOLS (about 1.5 minutes, once)"
  cargo install s3s-fs@0.14.1 --locked --features binary --root "$TOOLS"
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

S3_ROOT="$(mktemp -d)"
mkdir -p "$S3_ROOT/drift-test"
S3_PORT="$(free_port)"
export AWS_ACCESS_KEY_ID=drift-test AWS_SECRET_ACCESS_KEY=drift-test-secret
"$S3S" --host 127.0.0.1 --port "$S3_PORT" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$S3_ROOT" \
  >"$S3_ROOT.log" 2>&1 &
S3_PID=$!
trap 'kill "$S3_PID" 2>/dev/null || true; rm -rf "$S3_ROOT" "$S3_ROOT.log"' EXIT
for _ in $(seq 50); do
  (echo >"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break
  sleep 0.1
done
export DRIFT_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

cargo test --workspace --no-fail-fast "$@"
