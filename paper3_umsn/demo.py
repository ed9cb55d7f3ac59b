"""One command: a few CPU minutes of UMSN training on the embedded sample, evaluation, a contact sheet.

    python -m paper3_umsn.demo --workdir=/tmp/umsn_demo              # ~6 minutes of training
    python -m paper3_umsn.demo --workdir=/tmp/umsn_demo --from_scratch --minutes=30

Default: fine-tunes the shipped model (`weights/umsn_small.keras`, trained ~90 CPU minutes on
strong motion blur, see its model card) with the umsn stage (L_total, Eq. 6; CN starts fresh) on
`data/sample/faces` for `--minutes`, with the blur of `configs/cpu90_strong.flags`.
`--from_scratch`: the paper's four stages in order (Sec. IV-A: SN on clean faces, SN fine-tuned
on blurry faces, the F-Nets, then UMSN + CN) from random weights, splitting the budget between
them (a few minutes from scratch restore little: the shipped model took ~90).
Then `paper3_umsn.evaluate` on the held-out `data/sample/test_faces` (whole 128x128 faces,
blurred with the run's kernels): Table III / Table I beside the paper's numbers and
`WORKDIR/eval/contact_sheet.png` (blurred | UMSN | sharp). The test faces are held out from the
demo's fine-tuning, but most are LFW `train`-split images the shipped model was trained on: a
demonstration, not a held-out score (that is `common.compare` on the strong-blur test set).
Each stage is an ordinary
`python -m paper3_umsn.train` run, so an interrupted demo resumes where it stopped.
"""
import os
import subprocess
import sys

from absl import app, flags

from common import cli, paths
from paper3_umsn import deblur

# --from_scratch: share of the time budget per stage; most of it goes to the full network.
STAGE_SHARES = (("sn_clean", 0.15), ("sn_blurry", 0.10), ("fnet", 0.25), ("umsn", 0.50))
SHIPPED = deblur.SHIPPED


def define_flags(fv=flags.FLAGS):
    flags.DEFINE_string("workdir", None, "Folder for the stage workdirs and eval/.",
                        flag_values=fv)
    flags.DEFINE_float("minutes", 6.0, "Training minutes (over all stages).", flag_values=fv)
    flags.DEFINE_bool("from_scratch", False, "Train the four stages from random weights "
                      "instead of fine-tuning the shipped model.", flag_values=fv)
    flags.DEFINE_string("train_data", "data/sample/faces", "Sharp training faces (folder).",
                        flag_values=fv)
    flags.DEFINE_string("mask_dir", "data/sample/masks", "Class masks <stem>.png of the faces.",
                        flag_values=fv)
    flags.DEFINE_string("test_data", "data/sample/test_faces", "Held-out sharp faces (folder).",
                        flag_values=fv)
    flags.DEFINE_integer("num_images", 30, "Test faces to evaluate.", flag_values=fv)


def stage_commands(workdir, minutes, train_data, mask_dir, test_data, from_scratch=False):
    """The `python -m paper3_umsn.train` command lines of the stages, in order."""
    configs = os.path.join(paths.REPO_ROOT, "paper3_umsn", "configs")
    if not from_scratch:
        if not os.path.isfile(SHIPPED):
            raise app.UsageError(f"the shipped model {SHIPPED} is missing: run with "
                                 "--from_scratch (or restore paper3_umsn/weights/)")
        return [("umsn", [sys.executable, "-m", "paper3_umsn.train",
                          f"--flagfile={os.path.join(configs, 'cpu90_strong.flags')}",
                          f"--train_data={train_data}", f"--eval_data={test_data}",
                          "--stage=umsn", f"--init_model={SHIPPED}",
                          f"--workdir={os.path.join(workdir, 'umsn')}",
                          f"--max_train_minutes={minutes:.3f}", "--eval_every=0",
                          "--image_every=100"])]
    common = [sys.executable, "-m", "paper3_umsn.train",
              f"--flagfile={os.path.join(configs, 'cpu_demo.flags')}",
              f"--train_data={train_data}", f"--mask_dir={mask_dir}", f"--eval_data={test_data}",
              "--crop_size=128", "--num_steps=1000000"]
    init = {"sn_blurry": ["--learning_rate=0.00001", f"--init_sn={workdir}/sn_clean"],
            "fnet": [f"--init_sn={workdir}/sn_blurry"],
            "umsn": [f"--init_sn={workdir}/sn_blurry", f"--init_fnets={workdir}/fnet"]}
    return [(stage, common + [f"--stage={stage}", f"--workdir={os.path.join(workdir, stage)}",
                              f"--max_train_minutes={minutes * share:.3f}"] + init.get(stage, []))
            for stage, share in STAGE_SHARES]


def main(argv):
    del argv
    fv = flags.FLAGS
    if not fv.workdir:
        raise app.UsageError("--workdir is required")
    workdir = os.path.abspath(fv.workdir)
    for stage, command in stage_commands(workdir, fv.minutes, fv.train_data, fv.mask_dir,
                                         fv.test_data, fv.from_scratch):
        print(f"[demo] stage {stage}: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, cwd=paths.REPO_ROOT, check=True)
    eval_dir = os.path.join(workdir, "eval")
    subprocess.run([sys.executable, "-m", "paper3_umsn.evaluate",
                    f"--workdir={os.path.join(workdir, 'umsn')}", f"--test_data={fv.test_data}",
                    f"--num_images={fv.num_images}", f"--output_dir={eval_dir}"],
                   cwd=paths.REPO_ROOT, check=True)
    print(f"[demo] contact sheet: {os.path.join(eval_dir, 'contact_sheet.png')}")


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
