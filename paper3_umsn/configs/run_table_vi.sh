#!/usr/bin/env bash
# Table VI: the five ablation rows (bn, bn_sem, bn_sem_nrl, umsn_no_lc, umsn) as umsn-stage runs
# from the same SN and F-Net stages, then `evaluate` with one Table VI row per run.
#   bash paper3_umsn/configs/run_table_vi.sh WORKDIR SN_WORKDIR FNET_WORKDIR TRAIN_DATA TEST_DATA [FLAGS...]
# PROTOCOL=equal_steps (default): every row trains STEPS steps (default: table_vi.flags' 100k),
#   no time budget: the paper's comparison.
# PROTOCOL=equal_time: every row trains MINUTES minutes (default 5), whatever step it reaches.
# BASE: the flagfile every row starts from (default configs/table_vi.flags; e.g. a CPU run adds
#   --flagfile=paper3_umsn/configs/cpu_demo.flags among FLAGS). DRY_RUN=1 prints the commands.
# Rows resume when rerun (ordinary `python -m paper3_umsn.train` runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
usage="usage: run_table_vi.sh WORKDIR SN_WORKDIR FNET_WORKDIR TRAIN_DATA TEST_DATA [FLAGS...]"
W=${1:?$usage}; SN=${2:?$usage}; FNET=${3:?$usage}; DATA=${4:?$usage}; TEST=${5:?$usage}
shift 5
PY=${PYTHON:-python}
BASE=${BASE:-paper3_umsn/configs/table_vi.flags}
case "${PROTOCOL:-equal_steps}" in
  equal_steps) budget=(--max_train_minutes=0 ${STEPS:+--num_steps=$STEPS}) ;;
  equal_time) budget=(--num_steps=100000000 --max_train_minutes="${MINUTES:-5}") ;;
  *) echo "PROTOCOL must be equal_steps or equal_time, got ${PROTOCOL}" >&2; exit 2 ;;
esac
run() { if [[ -n "${DRY_RUN:-}" ]]; then echo "$@"; else "$@"; fi; }
rows=(bn bn_sem bn_sem_nrl umsn_no_lc umsn)
dirs=()
for ab in "${rows[@]}"; do
  run "$PY" -m paper3_umsn.train --flagfile="$BASE" --stage=umsn --ablation="$ab" \
    --workdir="$W/$ab" --train_data="$DATA" --init_sn="$SN" --init_fnets="$FNET" "$@" "${budget[@]}"
  dirs+=("$W/$ab")
done
run "$PY" -m paper3_umsn.evaluate --workdir="$W/umsn" --test_data="$TEST" \
  --ablation_workdirs="$(IFS=,; echo "${dirs[*]}")" --output_dir="$W/eval"
