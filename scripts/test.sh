#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing, starts the daemons the
# integration tests use, builds everything once (release profile, shared by tests and
# benchmarks), runs unit, integration and end-to-end tests, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
started=$(scripts/daemons.sh start)
trap "scripts/daemons.sh stop $(echo $started)" EXIT

cargo fmt --all -- --check
cargo build --release --workspace --all-targets
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
scripts/build-plugins.sh
# The plugins' own unit tests run natively (their rules are plain Rust).
(cd plugins && CARGO_TARGET_DIR="$PWD/target" cargo test --release --workspace --quiet)
cargo test --release --workspace --no-fail-fast
# cri-tools' conformance suite against `berth cri serve`; fails if a recorded spec regresses.
scripts/critest.sh
