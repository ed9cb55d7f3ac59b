"""Face-analysis protocols of the three papers on LFW (sharp / blurred / restored images).

    python -m common.face --output_dir=/tmp/face_eval \
        --protocols=verification,landmarks,detection,identity,recognition \
        --conditions=sharp,blurred [--conditions=sharp,blurred,restored --restored_dir=DIR]

Tables (results.md, CSV), results.json, plots and TensorBoard go to --output_dir; details in
common/face/evaluate.py.
"""
from absl import app, flags

from common.face import cli

if __name__ == "__main__":
    cli.define_flags()
    flags.adopt_module_key_flags(cli)  # --help lists the evaluation's flags
    app.run(cli.main)
