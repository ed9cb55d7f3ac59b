#!/usr/bin/env bash
# Issue 31: TensorFlow's thread pools (--intra_op_threads / --inter_op_threads, 0 = TensorFlow's
# default) against the shipped small recipes' train steps, one process per configuration,
# alternating, rounds FIRST_ROUND..ROUNDS (default 1..2); JSON to benchmarks/results/issue31/threads/.
#   bash benchmarks/issue31_threads.sh       (~10 minutes on 2 idle cores)
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
R=benchmarks/results/issue31/threads
mkdir -p "$R"
PY=${PYTHON:-python}
for round in $(seq "${FIRST_ROUND:-1}" "${ROUNDS:-2}"); do
  for run in "paper2 4 20" "paper2 8 20" "paper3 8 6" "paper1 8 8"; do
    set -- $run
    for thr in "0 0" "1 2"; do
      read -r intra inter <<< "$thr"
      out="$R/${1}_small_b$2_intra${intra}_inter${inter}_r$round.json"
      echo "== $out $(date +%T)"
      timeout 400 "$PY" benchmarks/train_bench.py --paper="$1" --variant=small --batch="$2" \
          --size=128 --precision=mixed_bfloat16 --mode=train --steps="$3" --flops=0 \
          --peak_tflops=0.460 --intra_op_threads="$intra" --inter_op_threads="$inter" \
          2>/dev/null | tail -1 > "$out"
    done
  done
done
echo "done $(date +%T): $R"
