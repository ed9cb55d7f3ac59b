"""The paper registry (`common.papers`, each package's `spec.py`) and the `# paper:` /
`# stage:` lines of flags.txt that say which paper trained a workdir (issue 33 item 4)."""
import os
import subprocess
import sys

from absl import flags
import pytest

from common import cli, papers, paths
from common.evaluation import methods
from common.train import flags as train_flags
from common.train import workdirs


def test_every_paper_has_a_spec_matching_its_package():
    from paper1_cyclegan_srn import train_cyclegan, train_srn  # noqa: F401  (defines the stages)
    from paper2_identity_cgan import models as p2models
    from paper3_umsn import models as p3models, train as p3train
    assert papers.names() == ("paper1", "paper2", "paper3")
    for name, package in papers.PACKAGES.items():
        spec = papers.get(name)
        assert (spec.name, spec.package) == (name, package)
        assert papers.get(package) is spec and papers.for_package(package) is spec
        spec.register_keras()
        assert all(m in sys.modules for m in spec.keras_modules)
    assert papers.get("paper2").stride == p2models.GEN_DIVISOR
    assert papers.get("paper3").stride == p3models.UMSN_STRIDE
    assert papers.get("paper3").stages == p3train.STAGES
    assert papers.for_package("keras") is None
    with pytest.raises(ValueError, match="unknown paper 'paper9'"):
        papers.get("paper9")


def test_importing_the_registry_imports_no_paper():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=paths.REPO_ROOT)
    script = ("import sys; from common import papers; from common.evaluation import methods; "
              "print([m for m in sys.modules if m.startswith('paper')])")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_save_flags_writes_paper_and_stage_lines_that_flagfiles_skip(tmp_path):
    fv = cli.parse_flags([train_flags.define_common_flags], ["prog", "--num_steps=7",
                                                             f"--workdir={tmp_path}"])
    path = cli.save_flags(fv, str(tmp_path), paper="paper3", stage="fnet")
    lines = open(path).read().splitlines()
    assert lines[0].startswith("# Resolved flags") and lines[1:3] == ["# paper: paper3",
                                                                        "# stage: fnet"]
    assert cli.read_run_header(str(tmp_path)) == {"paper": "paper3", "stage": "fnet"}
    assert workdirs.workdir_kind(str(tmp_path)) == ("paper3", "fnet")  # no paper-3 flag needed
    assert workdirs.workdir_kind(str(tmp_path / "checkpoints" / "ckpt-3")) == ("paper3", "fnet")
    assert workdirs.describe_workdir(str(tmp_path)) == "a paper-3 fnet workdir"
    assert methods.detect_paper(str(tmp_path)) == "paper3"
    # absl's own --flagfile (app.run without our expander) skips the comment lines too
    absl_fv = flags.FlagValues()
    train_flags.define_common_flags(absl_fv)
    absl_fv(["prog", f"--flagfile={path}"])
    assert absl_fv.num_steps == 7 and absl_fv.workdir == str(tmp_path)
    assert cli.load_flags([train_flags.define_common_flags], str(tmp_path)).num_steps == 7
    # without paper/stage (a toy trainer): no header lines, as before
    cli.save_flags(fv, str(tmp_path / "toy"))
    assert cli.read_run_header(str(tmp_path / "toy")) == {}


def test_old_workdirs_without_the_lines_are_still_recognised():
    campaign = os.path.join(paths.REPO_ROOT, "paper3_umsn", "campaign")  # written before them
    assert cli.read_run_header(campaign) == {}
    assert workdirs.workdir_kind(campaign) == ("paper3", "umsn")
    assert papers.of_workdir(campaign) is papers.get("paper3")
    assert methods.detect_paper(campaign) == "paper3"
