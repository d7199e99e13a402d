#!/usr/bin/env bash
# Template-mining throughput: medic vs Drain3 in the same run, on one core each, plus the
# 1 GB generated file, a raw scan baseline and the 10M-line memory check.
# Usage: bench/templates/run.sh [LOGHUB_DIR] [SECONDS]
# With MEDIC_BASELINE=/path/to/an/older/throughput binary, the older build runs the same
# medic measurements in the same run (before/after side by side).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-../shared/datasets/loghub2k}
SECS=${2:-10}
VENV=/tmp/medic-drain3-venv
BIG=/tmp/medic-bench-1g.log
MSGS=/tmp/medic-loghub-messages.txt
PREFIX=200000   # Drain3 on the 1 GB file would take ~hours; both run on the same prefix.
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q drain3; }
[ -s "$BIG" ] || python3 bench/templates/gen_lines.py "$BIG" $((1 << 30))
cargo build --release -q -p medic-templates --example throughput
T=target/release/examples/throughput
BASE=${MEDIC_BASELINE:-}
ratio() { python3 -c "import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2]); print(f'ratio $3: {a[sys.argv[3]]/b[sys.argv[4]]:.1f}x')" "$1" "$2" "$4" "${5:-lines_per_sec}"; }
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, pinned to core 0"
echo "--- loghub2k message bodies (16k), repeated ~${SECS}s"
M=$(taskset -c 0 "$T" loghub "$DIR" "$MSGS" "$SECS"); echo "$M"
D=$(taskset -c 0 "$VENV/bin/python" bench/templates/drain3_bench.py "$MSGS" 100000000 "$SECS"); echo "$D"
python3 -c "import json,sys; m=json.loads(sys.argv[1]); d=json.loads(sys.argv[2]); print(f'ratio medic/drain3 (warm): {m[\"warm_lines_per_sec\"]/d[\"lines_per_sec\"]:.1f}x, cold first pass: {m[\"cold_lines_per_sec\"]/d[\"lines_per_sec\"]:.1f}x')" "$M" "$D"
if [ -n "$BASE" ]; then B=$(taskset -c 0 "$BASE" loghub "$DIR" /dev/null "$SECS"); echo "baseline: $B"; ratio "$M" "$B" "medic/baseline (warm)" warm_lines_per_sec warm_lines_per_sec; fi
echo "--- generated file, first $PREFIX lines, one pass each"
M2=$(taskset -c 0 "$T" file "$BIG" $PREFIX); echo "$M2"
D2=$(taskset -c 0 "$VENV/bin/python" bench/templates/drain3_bench.py "$BIG" $PREFIX 0); echo "$D2"
python3 -c "import json,sys; m=json.loads(sys.argv[1]); d=json.loads(sys.argv[2]); print(f'ratio medic/drain3: {m[\"lines_per_sec\"]/d[\"lines_per_sec\"]:.1f}x')" "$M2" "$D2"
if [ -n "$BASE" ]; then B2=$(taskset -c 0 "$BASE" file "$BIG" $PREFIX); echo "baseline: $B2"; ratio "$M2" "$B2" "medic/baseline" lines_per_sec; fi
echo "--- generated file, first $PREFIX lines loaded first, mining only (timed like Drain3), repeated ~${SECS}s"
M3=$(taskset -c 0 "$T" lines "$BIG" $PREFIX "$SECS"); echo "$M3"
D3=$(taskset -c 0 "$VENV/bin/python" bench/templates/drain3_bench.py "$BIG" $PREFIX "$SECS"); echo "$D3"
ratio "$M3" "$D3" "medic/drain3" lines_per_sec
if [ -n "$BASE" ]; then B3=$(taskset -c 0 "$BASE" lines "$BIG" $PREFIX "$SECS"); echo "baseline: $B3"; ratio "$M3" "$B3" "medic/baseline" lines_per_sec; ratio "$B3" "$D3" "baseline/drain3" lines_per_sec; fi
echo "--- generated file, whole 1 GB (medic only) vs memchr newline scan of the same bytes"
taskset -c 0 "$T" file "$BIG"
echo "--- memory: 10M lines, 1M distinct parameter values"
taskset -c 0 "$T" memory 10000000 1000000
