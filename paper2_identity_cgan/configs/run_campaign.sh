#!/usr/bin/env bash
# The restoration campaign of paper 2 (issue 30), resumable: every call continues the cgan-stage run of
# configs/campaign_shake.flags in WORKDIR/campaign for MINUTES (default 80) or until its 100,000
# steps, then exports the newest checkpoint to WORKDIR/campaign_export.
#   bash paper2_identity_cgan/configs/run_campaign.sh WORKDIR LFW_TRAIN_RECORDS [INIT_MODEL]
# INIT_MODEL (default: the shipped paper2_identity_cgan/weights/cgan_small.keras) starts the run; a
# workdir already holding checkpoints resumes from the newest. START_STEP (default 0): on an
# empty workdir, count steps (and the cosine) from it, to continue committed weights passed as
# INIT_MODEL (--start_step; D, G_s's encoder and the optimizers start fresh). The committed state
# (a full checkpoint is 41 MB): START_STEP=68946 bash ... WORKDIR LFW_TRAIN_RECORDS
# paper2_identity_cgan/campaign/cgan_step68946.keras (campaign/leg2.json).
# FLAGFILE (default configs/campaign_shake.flags, recipe A): another recipe, e.g.
# configs/campaign_unet.flags (recipe B, every U-Net skip; see its header).
# LFW_TRAIN_RECORDS: python -m data.build --source=lfw --manual_dir=../shared/data/lfw \
#     --split=train --mode=sharp --output_dir=LFW_TRAIN_RECORDS --num_shards=8
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:?usage: run_campaign.sh WORKDIR LFW_TRAIN_RECORDS [INIT_MODEL]}
REC=${2:?usage: run_campaign.sh WORKDIR LFW_TRAIN_RECORDS [INIT_MODEL]}
INIT=${3:-paper2_identity_cgan/weights/cgan_small.keras}
PY=${PYTHON:-python}
FLAGFILE=${FLAGFILE:-paper2_identity_cgan/configs/campaign_shake.flags}
"$PY" -m paper2_identity_cgan.train --flagfile="$FLAGFILE" \
    --init_model="$INIT" --train_pairs="$REC/train-*.tfrecord" --eval_data=data/sample/test_faces \
    --workdir="$W/campaign" --max_train_minutes="${MINUTES:-80}" --start_step="${START_STEP:-0}"
"$PY" -m paper2_identity_cgan.export --workdir="$W/campaign" --export_dir="$W/campaign_export"
