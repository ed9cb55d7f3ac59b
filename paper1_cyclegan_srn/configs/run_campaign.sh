#!/usr/bin/env bash
# The restoration campaign of paper 1 (issue 30), resumable: every call continues the SRN run of
# configs/campaign_shake.flags in WORKDIR/campaign for MINUTES (default 80) or until its 6,000
# steps, then exports the newest checkpoint to WORKDIR/campaign_export.
#   bash paper1_cyclegan_srn/configs/run_campaign.sh WORKDIR LFW_TRAIN_RECORDS [INIT_MODEL]
# INIT_MODEL (default: the shipped paper1_cyclegan_srn/weights/srn_small.keras) starts the run; a
# workdir already holding checkpoints resumes from the newest. To continue a committed state,
# pass its weights as INIT_MODEL and its step as START_STEP (the cosine schedule goes on from there;
# Adam's moments start fresh), as leg 3 did: START_STEP=2073 bash ... WORKDIR LFW_TRAIN_RECORDS
# W2073.keras (campaign/leg1..3.json). The 6,000-step schedule is complete: its last step is the
# shipped weights/srn_small.keras; a longer run needs a new --num_steps (and a new cosine). The
# precision comes from the flagfiles (--mixed_precision=auto: bfloat16 on CPUs with AMX or
# AVX512-BF16, float32 on others).
# LFW_TRAIN_RECORDS: python -m data.build --source=lfw --manual_dir=../shared/data/lfw \
#     --split=train --mode=sharp --output_dir=LFW_TRAIN_RECORDS --num_shards=8
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:?usage: run_campaign.sh WORKDIR LFW_TRAIN_RECORDS [INIT_MODEL]}
REC=${2:?usage: run_campaign.sh WORKDIR LFW_TRAIN_RECORDS [INIT_MODEL]}
INIT=${3:-paper1_cyclegan_srn/weights/srn_small.keras}
PY=${PYTHON:-python}
"$PY" -m paper1_cyclegan_srn.train_srn --flagfile=paper1_cyclegan_srn/configs/campaign_shake.flags \
    --init_model="$INIT" --train_data="$REC/train-*.tfrecord" --eval_data=data/sample/test_faces \
    --workdir="$W/campaign" --max_train_minutes="${MINUTES:-80}" --start_step="${START_STEP:-0}"
"$PY" -m paper1_cyclegan_srn.export --workdir="$W/campaign" --export_dir="$W/campaign_export"
