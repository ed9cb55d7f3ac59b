#!/usr/bin/env bash
# The four UMSN stages of configs/cpu90_strong.flags in order, with their CPU minutes (8 + 3 + 8
# + 71 = 90; Sec. IV-A: SN on clean faces, SN on blurry faces, the F-Nets, then UMSN + CN). The
# F-Nets train on the whole blur mixture (kernels 9..29 px, >= 4 effective taps); UMSN + CN train
# on its stronger half (kernels 15..29 px with at least 12 effective taps) from the start: the
# mixture's validation blur (27.9 dB) is far milder than the strong-blur regime the shipped model
# is for, and on a strong-blur validation set of training-split faces this beat 55 minutes on
# the mixture followed by 20 on the stronger half (paper3_umsn/weights/umsn_small.md).
#   bash paper3_umsn/configs/run_cpu90_strong.sh WORKDIR LFW_TRAIN_RECORDS [VAL_FACES]
# Stages resume when rerun (each is an ordinary `python -m paper3_umsn.train` run).
# SN stages train on the 120 faces of data/sample/faces with their class masks; the F-Net and
# UMSN stages on LFW_TRAIN_RECORDS (identity-disjoint from the strong-blur test set).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${1:?usage: run_cpu90_strong.sh WORKDIR LFW_TRAIN_RECORDS [VAL_FACES]}
REC=${2:?usage: run_cpu90_strong.sh WORKDIR LFW_TRAIN_RECORDS [VAL_FACES]}
VAL=${3:-data/sample/test_faces}
PY=${PYTHON:-python}
F=paper3_umsn/configs/cpu90_strong.flags
run() { "$PY" -m paper3_umsn.train --flagfile=$F --eval_data="$VAL" "$@"; }
run --stage=sn_clean --workdir="$W/sn_clean" --train_data=data/sample/faces \
    --mask_dir=data/sample/masks --max_train_minutes=8
run --stage=sn_blurry --workdir="$W/sn_blurry" --train_data=data/sample/faces \
    --mask_dir=data/sample/masks --learning_rate=0.00001 --init_sn="$W/sn_clean" \
    --max_train_minutes=3
run --stage=fnet --workdir="$W/fnet" --train_data="$REC/train-*.tfrecord" \
    --init_sn="$W/sn_blurry" --max_train_minutes=8
run --stage=umsn --workdir="$W/umsn" --train_data="$REC/train-*.tfrecord" \
    --init_sn="$W/sn_blurry" --init_fnets="$W/fnet" --kernel_sizes=15:29 --kernel_min_taps=12 \
    --max_train_minutes=${UMSN_MINUTES:-71}
"$PY" -m paper3_umsn.export --workdir="$W/umsn" --export_dir="$W/umsn_export"
