"""common.curves: the campaign curve file is checked, and its plot is written."""
import json

import numpy as np
import pytest
from PIL import Image

from common import curves


def _curve(**over):
    curve = {"model": "m", "sets": {"val_a": "set a", "val_b": "set b"},
             "references": {"blurred input": {"val_a": [24.0, 0.64], "val_b": [26.6, 0.74]}},
             "points": [{"step": 250, "hours": 0.1, "val_a": [25.0, 0.70], "val_b": [28.0, 0.80]},
                        {"step": 500, "hours": 0.2, "val_a": [25.5, 0.72], "val_b": [28.3, 0.81]}],
             "chosen_step": 500,
             "test": {"set": "t", "points": [{"step": 500, "hours": 0.2, "psnr": 25.1,
                                              "ssim": 0.71}]}}
    curve.update(over)
    return curve


def _write(tmp_path, curve, name="c.json"):
    path = tmp_path / name
    path.write_text(json.dumps(curve))
    return str(path)


def test_plot_writes_a_png_with_one_panel_per_set(tmp_path):
    out = str(tmp_path / "plots" / "c.png")
    curves.plot_curves([_write(tmp_path, _curve())], out)
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[1] > 1.8 * img.shape[0]  # two panels side by side
    assert img.std() > 10  # something is drawn
    assert not list((tmp_path / "plots").glob("*.tmp*"))


@pytest.mark.parametrize("over, words", [
    ({"points": []}, "non-empty"),
    ({"points": [{"step": 1, "hours": 0.1, "val_a": [1, 2]}]}, "lacks val_b"),
    ({"points": [{"step": 1, "hours": 0.1, "val_a": [1], "val_b": [1, 2]}]}, "[PSNR, SSIM]"),
    ({"points": [{"step": 2, "hours": 0.3, "val_a": [1, 2], "val_b": [1, 2]},
                 {"step": 1, "hours": 0.1, "val_a": [1, 2], "val_b": [1, 2]}]}, "training order"),
])
def test_bad_curve_files_are_named(tmp_path, over, words):
    path = _write(tmp_path, _curve(**over))
    with pytest.raises(ValueError, match="c.json") as e:
        curves.load_curve(path)
    assert words in str(e.value)


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="c.json: not a readable curve"):
        curves.load_curve(str(path))
