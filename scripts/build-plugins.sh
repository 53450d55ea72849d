#!/usr/bin/env bash
# Builds the example and test plugins (Wasm components) into plugins/target, a target dir of
# their own so the host build is never invalidated by them.
set -euo pipefail
cd "$(dirname "$0")/../plugins"
CARGO_TARGET_DIR="$PWD/target" cargo build --release --target wasm32-wasip2 --workspace --quiet
