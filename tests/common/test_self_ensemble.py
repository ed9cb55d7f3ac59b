"""Tests for common.self_ensemble and the `,self_ensemble` method spec."""
import numpy as np
import pytest

from common import self_ensemble as se
from common.evaluation import methods


def test_transforms_are_the_dihedral_group_and_invert():
    x = np.random.default_rng(0).random((2, 5, 7, 3)).astype(np.float32)
    seen = set()
    for k, flip in se.TRANSFORMS:
        y = se._forward(x, k, flip)
        assert y.shape == ((2, 7, 5, 3) if k % 2 else x.shape)
        np.testing.assert_array_equal(se._inverse(y, k, flip), x)
        seen.add(y.tobytes())
    assert len(seen) == 8  # 8 distinct images of a generic input


def test_identity_and_equivariant_methods_are_unchanged_and_others_are_averaged():
    x = np.random.default_rng(1).random((1, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(se.self_ensemble(lambda a: a, x), x, atol=1e-7)
    # A method that adds its input's column index: the ensemble averages the 8 views of it.
    def fn(a):
        return a + np.arange(a.shape[2], dtype=np.float32)[None, None, :, None]
    want = np.mean([se._inverse(fn(se._forward(x, k, f)), k, f) for k, f in se.TRANSFORMS], 0)
    np.testing.assert_allclose(se.self_ensemble(fn, x), want, atol=1e-6)
    # Column ramps averaged over flips and turns: every pixel gets the mean of the row and
    # column ramps, 2.5 for a 6x6 image.
    np.testing.assert_allclose(se.self_ensemble(fn, x) - x, 2.5, atol=1e-5)
    np.testing.assert_allclose(se.self_ensemble(fn, x, num=1), fn(x))
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        se.self_ensemble(fn, x, num=3)


def test_method_spec_suffix_wraps_a_blind_method_only():
    m = methods.resolve_method("u=unsharp,self_ensemble")
    plain = methods.resolve_method("unsharp")
    x = np.random.default_rng(2).random((1, 16, 12, 3)).astype(np.float32)
    assert m.spec == "unsharp,self_ensemble" and "self-ensemble" in m.description
    want = se.self_ensemble(plain.fn, x)
    np.testing.assert_allclose(m(x), np.clip(want, 0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="blind"):
        methods.resolve_method("w=wiener,self_ensemble")
