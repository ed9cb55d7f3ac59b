"""Tests for common.kernel_stats (shape statistics of kernels) and the `shake` generator."""
import json
import os

import numpy as np
import pytest

from common import blur, kernel_stats
from common.paths import SHARED_DATA


def _line(size, length, angle):
    return blur.linear_motion_kernel(size, length=length, angle=angle)


def test_stats_of_hand_made_kernels():
    # A horizontal line of 11 equal taps: extent 11, 11 taps, path 11, straight, a line.
    k = np.zeros((15, 15))
    k[7, 2:13] = 1.0
    s = kernel_stats.kernel_stats(k)
    assert s["extent"] == 11 and s["path"] == 11 and s["tortuosity"] == 1.0
    assert s["taps"] == pytest.approx(11.0)
    assert s["aniso"] == 0.0 and s["off_path"] == 0.0
    # Uniform over 1..11: variance (11^2 - 1) / 12 along x, none along y.
    assert s["spread"] == pytest.approx(np.sqrt((11 ** 2 - 1) / 12))
    # A delta: one tap, no spread.
    d = np.zeros((9, 9))
    d[4, 4] = 1
    s = kernel_stats.kernel_stats(d)
    assert s["extent"] == 1 and s["taps"] == 1 and s["spread"] == 0
    # A filled disk is isotropic and its skeleton is short against its energy: off-path mass.
    disk = blur.defocus_kernel(21, 8.0)
    s = kernel_stats.kernel_stats(disk)
    assert s["aniso"] == pytest.approx(1.0, abs=0.02)
    assert s["off_path"] > 0.5
    # An L-shaped path is longer than its extent; a line at 45 degrees is still a line.
    ell = np.zeros((21, 21))
    ell[3, 3:18] = 1
    ell[3:18, 17] = 1
    assert kernel_stats.kernel_stats(ell)["tortuosity"] > 1.8
    assert kernel_stats.kernel_stats(_line(21, 15, np.pi / 4))["aniso"] < 0.2
    with pytest.raises(ValueError, match="non-negative"):
        kernel_stats.kernel_stats(-k)


def test_shake_kernels_reach_and_curve_more_than_the_old_generators():
    # What the generator is for: at whole exposure camera_shake is a ~3-px random walk and
    # linear is straight; shake spans most of its support and bends.
    def median(spec, key):
        bank = blur.make_kernel_bank(spec, 60, sizes=range(13, 30, 2), seed=3, exposure=1.0)
        return kernel_stats.summarise(bank)[key]["median"]
    assert median("shake", "extent") > 2 * median("camera_shake", "extent")
    assert median("shake", "aniso") > median("linear", "aniso") + 0.1
    for size in (13, 21, 29):
        for seed in range(5):
            k = blur.shake_kernel(size, seed=seed)
            assert 0.3 * size <= blur.kernel_extent(k) <= size


def test_validation_bank_excludes_levin_kernels():
    path = os.path.join(SHARED_DATA, "kernels", "kernels_12.npz")
    levin = blur.load_kernel_bank(os.path.join(SHARED_DATA, "kernels", "levin09.npz"),
                                  centre=True)
    bank = kernel_stats.validation_bank(num=5, seed=1, kair_path=path)
    assert bank.shape[0] == 7 and bank.shape[1] % 2 == 1
    np.testing.assert_allclose(bank.sum(axis=(1, 2)), 1.0, atol=1e-5)

    def same(a, b):
        a, b = blur.pad_kernels([a, b])
        return np.abs(a - b).max() < 1e-4
    # kernels_12's k8 / k9 are Levin's kernels 7 / 6 (why they are left out) ...
    with np.load(path) as z:
        assert same(blur.centre_kernel(z["k8"]), levin[7])
        assert same(blur.centre_kernel(z["k9"]), levin[6])
    # ... and nothing in the validation bank is a test kernel, nor k10 / k11 a flip, turn or
    # rescaling of one (normalised cross-correlation well below 1; k8 itself scores 1).
    assert not any(same(v, t) for v in bank for t in levin)
    from scipy.signal import correlate
    from skimage.transform import rescale

    def ncc(a, b):
        views = [np.rot90(v, r) for v in (b, b[:, ::-1]) for r in range(4)]
        views += [rescale(v, s, order=1) for v in views[:1] for s in (0.8, 1.25)]
        return max(correlate(a, v).max() / np.sqrt((a * a).sum() * (v * v).sum())
                   for v in views)
    with np.load(path) as z:
        assert ncc(z["k8"].astype(float), levin[7].astype(float)) > 0.99
        for name in ("k10", "k11"):
            assert max(ncc(z[name].astype(float), t.astype(float)) for t in levin) < 0.75


def test_cli_writes_table_json_and_plot(tmp_path, monkeypatch):
    from absl import flags
    fv = flags.FlagValues()
    kernel_stats.define_flags(fv)
    lev = os.path.join(SHARED_DATA, "kernels", "levin09.npz")
    fv(["prog", f"--bank=levin={lev}", "--bank=shake:13:21", f"--output_dir={tmp_path}",
        "--num=10"])
    monkeypatch.setattr(kernel_stats.flags, "FLAGS", fv)
    kernel_stats.main([])
    md = (tmp_path / "kernel_stats.md").read_text()
    assert "| levin | 8 |" in md and "| shake:13:21 | 10 |" in md
    data = json.loads((tmp_path / "kernel_stats.json").read_text())
    assert len(data["levin"]["extent"]["values"]) == 8
    assert (tmp_path / "kernel_stats.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="GENERATOR"):
        kernel_stats.load_spec("nonsense:1")
