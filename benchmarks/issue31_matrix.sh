#!/usr/bin/env bash
# Issue 31's measurements on an idle machine, one process per configuration, JSON to
# benchmarks/results/issue31/: machine peaks, the train steps of the three shipped small recipes
# (batch 8 x 128 for UMSN and SRN, the cGAN at 4 / 8 / 16 x 128), their per-op profiles
# (train_bench.py --mode=profile) and the grouped-convolution layouts in bfloat16 and float32.
#   bash benchmarks/issue31_matrix.sh        (from any directory; ~10 minutes on 2 idle cores)
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=2
R=benchmarks/results/issue31
mkdir -p "$R"
PY=${PYTHON:-python}
run() { out=$1; shift; echo "== $out $(date +%T)"; timeout 400 "$PY" "$@" 2>/dev/null | tail -1 > "$R/$out.json"; }
run machine_peak benchmarks/machine_peak.py --seconds=3
for cfg in "paper3 8" "paper1 8" "paper2 4" "paper2 8" "paper2 16"; do
  set -- $cfg
  run "train_${1}_small_b$2_s128" benchmarks/train_bench.py --paper="$1" --variant=small \
      --batch="$2" --size=128 --precision=mixed_bfloat16 --mode=train --steps=4 --flops=0
done
for cfg in "paper3 8" "paper1 8" "paper2 4"; do
  set -- $cfg
  run "profile_${1}_small_b$2_s128" benchmarks/train_bench.py --paper="$1" --variant=small \
      --batch="$2" --size=128 --precision=mixed_bfloat16 --mode=profile --steps=2
done
run grouped_conv_bf16 benchmarks/grouped_conv.py --precision=mixed_bfloat16 --output="$R/grouped_conv_bf16_full.json"
run grouped_conv_f32 benchmarks/grouped_conv.py --precision=float32 --output="$R/grouped_conv_f32_full.json"
echo "done $(date +%T): $R"
