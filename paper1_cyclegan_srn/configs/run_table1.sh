#!/usr/bin/env bash
# Table 1 of Nahli et al., every row a trained run, then the table (GPU scale: the paper's settings).
# Run from the repository root after the paper's own chain (stage 0-3: cyclegan.flags,
# generate_pairs.flags, srn.flags -> runs/p1_srn and records/p1/pairs):
#   GOPRO=/data/GOPRO_Large bash paper1_cyclegan_srn/configs/run_table1.sh
# GOPRO: the extracted GOPRO_Large.zip (train/ and test/ of <seq>/blur|sharp/*.png, 1280x720).
# Every step resumes: data.build and prepare_unpaired keep finished shards, the trainers restore
# their newest checkpoint (a finished run returns at once).
set -euo pipefail
: "${GOPRO:?set GOPRO to the GOPRO_Large folder (train/ and test/)}"
C=paper1_cyclegan_srn/configs
R=${RUNS:-runs}

# GoPro pairs as stored (never re-blurred): training pairs for Tao et al., test pairs for the GoPro columns
python -m data.build --source=gopro --manual_dir="$GOPRO" --split=train --mode=paired \
  --output_dir=records/gopro --name=train --num_shards=16
python -m data.build --source=gopro --manual_dir="$GOPRO" --split=test --mode=paired \
  --output_dir=records/gopro --name=test --num_shards=8
# unpaired GoPro for Yuan et al.: sharp frames vs blurred frames of other sequences
python -m paper1_cyclegan_srn.prepare_unpaired --flagfile=$C/prepare_unpaired_gopro.flags --gopro="$GOPRO"

python -m paper1_cyclegan_srn.train_srn --flagfile=$C/table1_tao_srn.flags --workdir="$R/p1_tao"
python -m paper1_cyclegan_srn.train_cyclegan --flagfile=$C/table1_yuan_cyclegan.flags --workdir="$R/p1_yuan"
python -m paper1_cyclegan_srn.train_cyclegan --flagfile=$C/table1_zhu_cyclegan.flags --workdir="$R/p1_zhu"

python -m paper1_cyclegan_srn.evaluate --srn_workdir="$R/p1_srn" \
  --tao=paper1:"$R/p1_tao" --yuan=paper1:"$R/p1_yuan" --zhu=paper1:"$R/p1_zhu" \
  --compare="stage-1 F=paper1:$R/p1_cyclegan" \
  --test_data='records/p1/pairs/test-*.tfrecord' --gopro_data='records/gopro/test-*.tfrecord' \
  --blur_kernels=markov --detector=mtcnn --output_dir="$R/p1_table1"
