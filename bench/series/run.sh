#!/usr/bin/env bash
# Series scorer benchmark: throughput, memory per series, NAB scores (see RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run --release -q -p medic-eval --example series_bench -- "${1:-../shared/datasets/nab}" "${2:-100000}"
