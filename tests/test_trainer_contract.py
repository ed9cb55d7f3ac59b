"""Issue 33 item 5, across the papers: one default for rounding on-the-fly blur to 8 bits
(`common.blur.QUANTIZE_BLUR`, every trainer's --quantize_blur), and the shipped flagfiles still
mean what they meant (paper 1 always rounded; papers 2 and 3 never did)."""
import glob
import os

import numpy as np
import pytest

from common import blur, cli
from common.train import flags as train_flags
from common.paths import REPO_ROOT
from paper1_cyclegan_srn import train_cyclegan, train_srn
from paper2_identity_cgan import train as train2
from paper3_umsn import train as train3

TRAINERS = {"train_srn": train_srn, "train_cyclegan": train_cyclegan,
            "paper2": train2, "paper3": train3}


def _parse(module, *argv):
    return cli.parse_flags([train_flags.define_common_flags, module.define_flags],
                                   ["prog", *argv])


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_trainer_defaults_quantize_blur_to_the_common_default(name):
    assert _parse(TRAINERS[name]).quantize_blur is blur.QUANTIZE_BLUR


def _flagfiles(pattern):
    return sorted(glob.glob(os.path.join(REPO_ROOT, pattern)))


@pytest.mark.parametrize("module,pattern,want", [
    (train_srn, "paper1_cyclegan_srn/configs/*srn.flags", True),
    (train_cyclegan, "paper1_cyclegan_srn/configs/*cyclegan*.flags", True),
    (train2, "paper2_identity_cgan/configs/*.flags", False),
    (train3, "paper3_umsn/configs/*.flags", False)])
def test_shipped_flagfiles_keep_their_rounding(module, pattern, want):
    files = _flagfiles(pattern)
    assert files, pattern
    for path in files:
        assert _parse(module, f"--flagfile={path}").quantize_blur is want, path


def test_paper3_training_data_follows_quantize_blur():
    def blurred(flag):
        config = _parse(train3, "--flagfile=paper3_umsn/configs/smoke.flags", "--stage=fnet", flag)
        bank = train3.make_kernel_bank(config)
        return np.asarray(next(iter(train3.make_train_dataset(config, bank)))["blurred"])
    rounded, raw = blurred("--quantize_blur"), blurred("--noquantize_blur")
    np.testing.assert_allclose(rounded * 255, np.round(rounded * 255), atol=1e-3)
    assert np.abs(raw * 255 - np.round(raw * 255)).max() > 0.1
