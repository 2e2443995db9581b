#!/usr/bin/env bash
# Helpers for the project's scripts (sourced, not run): install the test services from
# crates.io into $DRIFT_TOOLS (default ~/.cache/drift-tools), once, and start them on free
# loopback ports. Each `start_*` exports the variable the tests read and registers the
# process for `stop_services`.
#   - s3s-fs 0.14.1: an S3-compatible server, for the s3:// storage tests.
#   - tansu: a Kafka-compatible broker with SQLite storage, for the Kafka sink end-to-end
#     tests (DESIGN.md section 5).
#   - a Python virtual environment with grpcio, grpcio-tools and ADBC's Flight SQL driver
#     (adbc-driver-flightsql, pyarrow; when python3 exists), for
#     the test that drives the gRPC server from Python; exported as DRIFT_PYTHON.
#   - a second venv with the peers faiss-cpu, hnswlib and numpy, for `drift bench`, the lab's
#     peer systems and their tests; exported as DRIFT_PEER_PYTHON.

TOOLS="${DRIFT_TOOLS:-$HOME/.cache/drift-tools}"
SERVICE_PIDS=()
SERVICE_DIRS=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 300); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "service on port $1 did not start; its log:" >&2
  cat "$2" >&2 || true
  return 1
}

# A TrueType font for the lab's chart text (drift_lab::chart looks in the usual places).
install_font() {
  for f in /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/dejavu/DejaVuSans.ttf \
    /usr/share/fonts/TTF/DejaVuSans.ttf /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf; do
    [ -f "$f" ] && return 0
  done
  if [ -n "${DRIFT_FONT:-}" ] && [ -f "$DRIFT_FONT" ]; then return 0; fi
  echo "installing fonts-dejavu-core (chart text)"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y fonts-dejavu-core >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y fonts-dejavu-core >/dev/null; } ||
    echo "warning: could not install fonts-dejavu-core; lab charts will fail until a font is present (DRIFT_FONT)"
}

install_tools() {
  install_font
  if [ ! -x "$TOOLS/bin/s3s-fs" ]; then
    echo "installing s3s-fs 0.14.1 into $TOOLS (about 1.5 minutes, once)"
    cargo install s3s-fs@0.14.1 --locked --features binary --root "$TOOLS"
  fi
  if [ ! -x "$TOOLS/bin/tansu" ]; then
    echo "installing tansu into $TOOLS (about 11 minutes, once)"
    cargo install tansu@0.6.0 --locked --features dynostore,libsql --root "$TOOLS"
  fi
  if command -v python3 >/dev/null; then
    if ! "$TOOLS/pyenv/bin/python" -c 'import grpc, grpc_tools, adbc_driver_flightsql, pyarrow' 2>/dev/null; then
      echo "installing grpcio, grpcio-tools and ADBC's Flight SQL driver into $TOOLS/pyenv (once)"
      python3 -m venv "$TOOLS/pyenv"
      "$TOOLS/pyenv/bin/pip" install --quiet grpcio grpcio-tools \
        "adbc-driver-flightsql==1.13.0" "pyarrow==26.0.1"
    fi
    export DRIFT_PYTHON="$TOOLS/pyenv/bin/python"
  fi
  install_peers
}

# The peer systems (lab/scripts/peers.py): real faiss and hnswlib, pinned, in their own venv.
install_peers() {
  command -v python3 >/dev/null || { echo "warning: python3 not found; peers unavailable"; return 0; }
  if ! "$TOOLS/peers/bin/python" -c 'import faiss, hnswlib, numpy' 2>/dev/null; then
    echo "installing faiss-cpu, hnswlib and numpy into $TOOLS/peers (about 1 minute, once)"
    python3 -m venv "$TOOLS/peers"
    "$TOOLS/peers/bin/pip" install --quiet "numpy>=1.26,<3" "faiss-cpu==1.15.1" "hnswlib==0.8.0"
  fi
  export DRIFT_PEER_PYTHON="$TOOLS/peers/bin/python"
}

start_s3() {
  local root port
  root="$(mktemp -d)"
  mkdir -p "$root/drift-test"
  port="$(free_port)"
  export AWS_ACCESS_KEY_ID=drift-test AWS_SECRET_ACCESS_KEY=drift-test-secret
  "$TOOLS/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$root" \
    >"$root.log" 2>&1 &
  SERVICE_PIDS+=($!)
  SERVICE_DIRS+=("$root" "$root.log")
  wait_port "$port" "$root.log"
  export DRIFT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
}

start_kafka() {
  local dir port
  dir="$(mktemp -d)"
  port="$(free_port)"
  # tansu reads the path of a sqlite:// URL as relative: start it inside its directory.
  (cd "$dir" && exec "$TOOLS/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "sqlite://tansu.db") >"$dir.log" 2>&1 &
  SERVICE_PIDS+=($!)
  SERVICE_DIRS+=("$dir" "$dir.log")
  wait_port "$port" "$dir.log"
  export DRIFT_TEST_KAFKA_BROKERS="127.0.0.1:$port"
  export DRIFT_TANSU="$TOOLS/bin/tansu"
}

stop_services() {
  for pid in "${SERVICE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SERVICE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for d in "${SERVICE_DIRS[@]}"; do rm -rf "$d"; done
}
