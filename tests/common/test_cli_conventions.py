"""absl conventions of every command-line program (issue 14): a bad flag value or an unknown flag
is one `FATAL Flags parsing error` line and exit status 1 (no traceback), and `--help` lists the
key flags, including the common ones defined in `common` (`--workdir`, `--strategy`, ...).

Each CLI runs once in a subprocess with `--help` and once with a bad value; neither reaches any
TensorFlow work (parsing fails or help exits first), so the cost is the imports (~10 s each on the
2-core machine).
"""
import os
import subprocess
import sys

import pytest

from common.paths import REPO_ROOT

# (module, a bad argument, flags its --help must list)
CLIS = [
    ("paper1_cyclegan_srn.train_cyclegan", "--mixed_precision=half",
     ("--workdir", "--strategy", "--crop_size", "--blur_kernels", "--beta_1")),
    ("paper1_cyclegan_srn.train_srn", "--num_steps=many", ("--workdir", "--batch_size", "--resize")),
    ("paper2_identity_cgan.train", "--stage=hgg", ("--workdir", "--strategy", "--crop_size",
                                                   "--kernel_min_taps")),
    ("paper3_umsn.train", "--stage=umnsn", ("--workdir", "--strategy", "--batch_size",
                                            "--crop_size", "--kernel_sizes",
                                            "--kernel_min_extent")),
    ("paper1_cyclegan_srn.evaluate", "--no_such_flag=1", ("--srn_workdir", "--blur_kernels")),
    ("paper2_identity_cgan.evaluate", "--pairs_per_fold=x", ("--workdirs",)),
    ("paper3_umsn.evaluate", "--paper_set=imagenet", ("--workdir", "--test_data")),
    ("paper3_umsn.deblur", "--tile=big", ("--checkpoint", "--output_dir")),
    ("paper2_identity_cgan.data", "--crop_size=0", ("--output_dir", "--train_stills")),
    ("data.build", "--mode=blurry", ("--source", "--blur_kernels", "--resize",
                                     "--kernel_min_extent")),
]


def _run(module, *args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", module, *args], cwd="/", env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module,bad,listed", CLIS, ids=[c[0] for c in CLIS])
def test_bad_flag_is_one_fatal_line_and_help_lists_key_flags(module, bad, listed):
    r = _run(module, bad)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    fatal = [line for line in r.stderr.splitlines() if line.startswith("FATAL Flags parsing error")]
    assert len(fatal) == 1, r.stderr[-2000:]
    assert bad.split("=")[0].lstrip("-") in fatal[0]
    assert "Traceback" not in r.stderr

    h = _run(module, "--help")  # absl's --help exits with status 1 after printing the help
    assert "Traceback" not in h.stderr, h.stderr[-2000:]
    for flag in listed:
        assert f"{flag}:" in h.stdout, (flag, h.stdout[-3000:])
