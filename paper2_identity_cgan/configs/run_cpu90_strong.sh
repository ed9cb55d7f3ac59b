#!/usr/bin/env bash
# Paper 2's shipped-weights recipe (issue 11): about 90 minutes of a 2-core CPU in all.
#   bash paper2_identity_cgan/configs/run_cpu90_strong.sh WORKDIR
# Run from the repository root with ../shared/data beside it. Steps:
#  1. 640 LFW `train`-split faces (identity-disjoint from the strong-blur test's `test` split), one
#     per person, 128x128 centres; the last 40 people are the validation faces (--eval_data).
#  2. frame-averaged training pairs of the other 600 (synthetic video at 1x/2x/3x motion) + the
#     real face_video_toy clips.
#  3. HG (10 min), then the cGAN (70 min); then export WORKDIR/cgan/export/*.keras.
set -euo pipefail
W=${1:?usage: run_cpu90_strong.sh WORKDIR}
mkdir -p "$W"
if [ ! -d "$W/stills/sharp" ]; then
  python -m data.build --source=lfw --manual_dir=../shared/data/lfw --split=train --mode=sharp \
    --output_format=folder --center_crop=128 --max_per_identity=1 --max_items=640 \
    --exclude_identities=data/sample/test_faces --name=lfw_train_stills --output_dir="$W/stills"
fi
if [ ! -d "$W/val" ]; then
  mkdir -p "$W/val"
  ls "$W/stills/sharp" | sort | tail -n 40 | while read -r f; do mv "$W/stills/sharp/$f" "$W/val/"; done
fi
if ! ls "$W"/pairs/train-*.tfrecord >/dev/null 2>&1; then
  python -m paper2_identity_cgan.data --train_stills="$W/stills/sharp" --train_videos='../shared/data/face_video_toy/*' \
    --motion_scale=1,2,3 --crop_size=128 --output_dir="$W/pairs"
fi
python -m paper2_identity_cgan.train --flagfile=paper2_identity_cgan/configs/cpu90_strong_hg.flags \
  --train_data="$W/stills/sharp" --workdir="$W/hg"
python -m paper2_identity_cgan.train --flagfile=paper2_identity_cgan/configs/cpu90_strong_cgan.flags \
  --train_pairs="$W/pairs/train-*.tfrecord" --hg_workdir="$W/hg" --eval_data="$W/val" --workdir="$W/cgan"
