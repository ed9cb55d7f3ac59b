#!/usr/bin/env bash
# The restoration campaign of paper 3 (issue 30), resumable: every call continues the umsn-stage
# run of configs/campaign_shake.flags in WORKDIR/campaign for MINUTES (default 80) or until its
# 30,000 steps, then exports the newest checkpoint to WORKDIR/campaign_export.
#   bash paper3_umsn/configs/run_campaign.sh WORKDIR LFW_TRAIN_RECORDS [INIT_MODEL]
# INIT_MODEL (default: the shipped paper3_umsn/weights/umsn_small.keras) starts the run; from
# scratch, first `bash paper3_umsn/configs/run_cpu90_strong.sh WORKDIR LFW_TRAIN_RECORDS` and pass
# WORKDIR/umsn_export/umsn.keras. A workdir already holding checkpoints resumes from the newest
# (the init model is then overwritten by the restore). To continue a committed state, copy
# paper3_umsn/campaign/ (checkpoints/ and flags.txt) to WORKDIR/campaign first.
# START_STEP (default 0): on an empty workdir, count steps (and the cosine) from it, to continue
# committed weights passed as INIT_MODEL (--start_step; the optimizers start fresh).
# LFW_TRAIN_RECORDS: python -m data.build --source=lfw --manual_dir=../shared/data/lfw \
#     --split=train --mode=sharp --output_dir=LFW_TRAIN_RECORDS --num_shards=8
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:?usage: run_campaign.sh WORKDIR LFW_TRAIN_RECORDS [INIT_MODEL]}
REC=${2:?usage: run_campaign.sh WORKDIR LFW_TRAIN_RECORDS [INIT_MODEL]}
INIT=${3:-paper3_umsn/weights/umsn_small.keras}
PY=${PYTHON:-python}
"$PY" -m paper3_umsn.train --flagfile=paper3_umsn/configs/campaign_shake.flags \
    --init_model="$INIT" --train_data="$REC/train-*.tfrecord" --eval_data=data/sample/test_faces \
    --workdir="$W/campaign" --max_train_minutes="${MINUTES:-80}" --start_step="${START_STEP:-0}"
"$PY" -m paper3_umsn.export --workdir="$W/campaign" --export_dir="$W/campaign_export"
