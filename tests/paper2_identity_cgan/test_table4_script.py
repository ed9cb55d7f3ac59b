"""configs/run_table4.sh end to end on the smoke flagfiles (tiny networks, 1-2 steps per stage):
one HG, one pair set, the four Table 4 variants, one table. ~90 CPU-s: six Python processes."""
import csv
import os
import subprocess
import sys

import pytest

from common.paths import SHARED_DATA

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY = os.path.join(SHARED_DATA, "face_video_toy")


def _flags(workdir):
  with open(os.path.join(workdir, "flags.txt")) as f:
    return set(f.read().split())


@pytest.mark.skipif(not os.path.isdir(TOY), reason="needs ../shared/data/face_video_toy")
def test_run_table4_smoke_trains_every_variant_into_one_table(tmp_path):
  w = str(tmp_path / "t4")
  env = dict(os.environ, PYTHON=sys.executable, ONLY2MF2_VIDEOS=os.path.join(TOY, "*"),
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  r = subprocess.run(["bash", "paper2_identity_cgan/configs/run_table4.sh", w, "--smoke",
                      "--num_steps=1"], cwd=REPO, env=env, capture_output=True, text=True,
                     timeout=1800, check=False)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
  with open(os.path.join(w, "eval", "table_0.csv")) as f:
    rows = {row["method"]: row for row in csv.DictReader(f)}
  assert list(rows) == ["identity-noHG-only2mf2", "identity-noHG", "no-identity", "final"]
  for name, row in rows.items():
    assert float(row["SSIM (ours)"]) > 0 and float(row["AUC (paper)"]) > 0, name
  # one HG and one pair set: the variants train on final's records; only2mf2 on its own
  pairs = f"--train_pairs={w}/pairs/train-*-of-*.tfrecord"
  assert pairs in _flags(os.path.join(w, "nohg")) and pairs in _flags(os.path.join(w, "noid"))
  assert {"--nouse_hg", "--identity"} <= _flags(os.path.join(w, "nohg"))
  assert {"--use_hg", "--noidentity", f"--hg_workdir={w}/hg"} <= _flags(os.path.join(w, "noid"))
  assert {"--nouse_hg", "--noreverse", "--train_stills="} <= _flags(os.path.join(w, "nohg_only2mf2"))
  assert os.listdir(os.path.join(w, "pairs_only2mf2"))
