"""Table 2's synthetic set uses a kernel family disjoint from stage 1's bank (issue 17)."""
import os
from types import SimpleNamespace

import numpy as np
import pytest

from common import paths, shared_flags
from paper1_cyclegan_srn import evaluate


def _bank(spec):
    """The bank paper 1's evaluate builds from --blur_kernels=spec (16 kernels, 7..15 px)."""
    return shared_flags.kernel_bank(SimpleNamespace(
        blur_kernels=spec, num_kernels=16, kernel_sizes="7:15", kernel_exposure=0.0,
        kernel_min_taps=0.0, seed=0))

LEVIN = os.path.join(paths.SHARED_DATA, "kernels", "levin09.npz")
KAIR = os.path.join(paths.SHARED_DATA, "kernels", "kernels_12.npz")


def test_kernel_similarity_known_values():
    k = np.zeros((5, 5)); k[2, 1:4] = 1 / 3
    shifted = np.zeros((7, 7)); shifted[1, 0:3] = 1 / 3
    assert evaluate.kernel_similarity(k, shifted) == pytest.approx(1.0)
    assert evaluate.kernel_similarity(k, k[::-1, ::-1]) == pytest.approx(1.0)
    v = np.zeros((5, 5)); v[1:4, 2] = 1 / 3
    assert evaluate.kernel_similarity(k, v) == pytest.approx(1 / 3)   # one tap of three overlaps


def test_synthetic_set_refuses_stage_one_kernels():
    bank = _bank("camera_shake")
    with pytest.raises(ValueError, match="--blur_kernels=same shares 16 kernel"):
        evaluate.check_disjoint_kernels(bank, bank, "same", "same")


@pytest.mark.skipif(not os.path.isfile(LEVIN) or not os.path.isfile(KAIR), reason="shared kernels absent")
def test_kair_bank_holds_two_levin_kernels_and_markov_holds_none():
    """KAIR's kernels_12 k8 and k9 are Levin et al. kernels: that bank is not disjoint."""
    levin = _bank(LEVIN)
    with pytest.raises(ValueError, match=r"shares 2 kernel\(s\)"):
        evaluate.check_disjoint_kernels(_bank(KAIR), levin, "kernels_12", "levin09")
    assert evaluate.check_disjoint_kernels(_bank("markov"), levin)
