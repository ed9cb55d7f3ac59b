#!/usr/bin/env bash
# Table 4 (Sec. 5.3, self evaluation): every variant trained from ONE hourglass and ONE pair set,
# then evaluated together into one table (PrAvg 7).
#   bash paper2_identity_cgan/configs/run_table4.sh WORKDIR [--smoke] [EXTRA_CGAN_FLAGS...]
# Run from the repository root. Variants (the paper's names, workdirs under WORKDIR):
#   final                   the full model (HG-conditioned G_bl + identity stream G_s)   final/
#   identity-noHG           G_bl sees only the blurry image (--nouse_hg)                  nohg/
#   no-identity             no G_s (--noidentity)                                         noid/
#   identity-noHG-only2mf2  as identity-noHG, trained only on forward-order pairs of real
#                           video (the paper: 2MF^2 forward only; here --train_videos=$ONLY2MF2_VIDEOS,
#                           no stills, --noreverse)                                      nohg_only2mf2/
# The HG is trained once (hg/); 'final' builds the pair set once into pairs/ and every other
# variant except only2mf2 trains on exactly those records. Re-running resumes finished stages.
# Environment: HG_FLAGS / CGAN_FLAGS (flagfiles; default hg.flags / cgan.flags, the paper's
# settings; --smoke: smoke.flags, tiny networks, 2 steps), ONLY2MF2_VIDEOS (glob, default
# ../shared/data/face_video_toy/*), EVAL_ARGS (more evaluate flags, e.g. 300VW's
# --test_videos='300VW_TEST/*/frames'), PYTHON (default python).
set -euo pipefail
W=${1:?usage: run_table4.sh WORKDIR [--smoke] [EXTRA_CGAN_FLAGS...]}
shift
SMOKE=0
if [ "${1:-}" = "--smoke" ]; then SMOKE=1; shift; fi
PY=${PYTHON:-python}
C=paper2_identity_cgan/configs
VIDEOS=${ONLY2MF2_VIDEOS:-../shared/data/face_video_toy/*}
if [ "$SMOKE" = 1 ]; then
  HG_FLAGS=${HG_FLAGS:-$C/smoke.flags}
  CGAN_FLAGS=${CGAN_FLAGS:-$C/smoke.flags}
  EVAL_ARGS=${EVAL_ARGS:---stills_limit=2 --identity_model=}
else
  HG_FLAGS=${HG_FLAGS:-$C/hg.flags}
  CGAN_FLAGS=${CGAN_FLAGS:-$C/cgan.flags}
  EVAL_ARGS=${EVAL_ARGS:-}
fi
mkdir -p "$W"
train() { "$PY" -m paper2_identity_cgan.train "$@"; }
train --flagfile="$HG_FLAGS" --stage=hg --workdir="$W/hg"
train --flagfile="$CGAN_FLAGS" --stage=cgan --hg_workdir="$W/hg" --pairs_dir="$W/pairs" \
  --workdir="$W/final" "$@"
PAIRS="$W/pairs/train-*-of-*.tfrecord"
train --flagfile="$CGAN_FLAGS" --stage=cgan --nouse_hg --train_pairs="$PAIRS" --workdir="$W/nohg" "$@"
train --flagfile="$CGAN_FLAGS" --stage=cgan --hg_workdir="$W/hg" --noidentity --train_pairs="$PAIRS" \
  --workdir="$W/noid" "$@"
train --flagfile="$CGAN_FLAGS" --stage=cgan --nouse_hg --train_stills= --train_videos="$VIDEOS" \
  --noreverse --pairs_dir="$W/pairs_only2mf2" --workdir="$W/nohg_only2mf2" "$@"
# shellcheck disable=SC2086  # EVAL_ARGS is a list of flags
"$PY" -m paper2_identity_cgan.evaluate --protocols=pravg7 --out_dir="$W/eval" \
  --workdirs="final=$W/final,identity-noHG=$W/nohg,no-identity=$W/noid,identity-noHG-only2mf2=$W/nohg_only2mf2" \
  $EVAL_ARGS
echo "Table 4: $W/eval/results.md (first table), $W/eval/table_0.csv"
