"""Issue 33 item 3: the deblur / export CLIs and `common.cli` load no training code.

Each import runs in a fresh interpreter (this test process has long imported everything), and
the test reads that interpreter's `sys.modules`. The training loop and the checkpoint code
(`common.train.loop`, `common.train.checkpoints`) must not be there; paper 1's `deblur` and
paper 2's `deblur` / `export` import their `evaluate` (which imports the trainers) only inside
the function that rebuilds a workdir, so loading a `.keras` file never needs them.
"""
import json
import os
import subprocess
import sys

import pytest

from common import paths

TRAINING_MODULES = ("common.train.loop", "common.train.checkpoints", "common.train.trainer")
CLI_MODULES = ("common.cli", "common.papers",
               "paper1_cyclegan_srn.deblur", "paper1_cyclegan_srn.export",
               "paper2_identity_cgan.deblur", "paper2_identity_cgan.export",
               "paper3_umsn.deblur", "paper3_umsn.export")

_SCRIPT = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("common", "paper")))))
"""


def _modules_after_import(module):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=paths.REPO_ROOT)
    done = subprocess.run([sys.executable, "-c", _SCRIPT, module], cwd=paths.REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", CLI_MODULES)
def test_cli_module_imports_no_training_code(module):
    loaded = _modules_after_import(module)
    assert module in loaded  # the check looks at the right interpreter
    assert not loaded & set(TRAINING_MODULES), sorted(loaded & set(TRAINING_MODULES))
    # nor any paper's trainer or evaluation code (they import the training modules)
    assert not {m for m in loaded if m.startswith("paper")
                and m.rsplit(".", 1)[-1].startswith(("train", "evaluate"))}


def test_common_cli_imports_no_tensorflow_distribute():
    loaded = _modules_after_import("common.cli")
    assert not {m for m in loaded if m.startswith("common.train")}, loaded
    assert not {m for m in loaded if m.startswith("paper")}, loaded


def test_the_checker_sees_training_imports():
    """The other tests could fail: a trainer module does pull in the loop and checkpoints."""
    loaded = _modules_after_import("paper3_umsn.train")
    assert set(TRAINING_MODULES) <= loaded
