#!/usr/bin/env bash
# All three stages end to end on the shared data (../shared/data) from the cpu_* flagfiles, then
# the tables. Run from the repository root:  bash paper1_cyclegan_srn/run_cpu_pipeline.sh
set -euo pipefail
C=paper1_cyclegan_srn/configs
python -m paper1_cyclegan_srn.prepare_unpaired --flagfile=$C/prepare_unpaired.flags
python -m paper1_cyclegan_srn.train_cyclegan --flagfile=$C/cpu_cyclegan.flags --workdir=runs/p1_cyclegan
python -m paper1_cyclegan_srn.generate_pairs --flagfile=$C/cpu_generate_pairs.flags
python -m paper1_cyclegan_srn.train_srn --flagfile=$C/cpu_srn.flags --workdir=runs/p1_srn
