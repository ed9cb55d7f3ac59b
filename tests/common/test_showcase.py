"""python -m common.showcase: the README figure (real photos + test faces x methods)."""
import os

import numpy as np
import pytest

from common import image_io, metrics, showcase
from tests.common.test_evaluation import make_folder


def test_figure_rows_columns_and_psnr(tmp_path):
    ts = make_folder(str(tmp_path / "ts"), n=2)
    real = tmp_path / "real"
    image_io.write_image(str(real / "photo.png"), np.full((50, 70, 3), 120, np.uint8))
    logs = []
    sheet, labels, scores = showcase.figure(ts, ["blurred", "sharpen=unsharp"], str(real),
                                            num_faces=2, num_real=1, height=64, log=logs.append)
    assert labels == ["blurred", "blurred", "sharpen", "sharp"]
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    # 3 rows of 64 px (+ label strip and padding) -- one real photo, two test faces.
    assert 3 * 64 < sheet.shape[0] < 3 * 64 + 40
    names = sorted(os.listdir(os.path.join(ts, "sharp")))
    want = metrics.psnr(image_io.to_float32(image_io.read_image(os.path.join(ts, "blurred", names[0]))),
                        image_io.to_float32(image_io.read_image(os.path.join(ts, "sharp", names[0]))))
    assert scores[0]["blurred"] == pytest.approx(float(want), abs=1e-4)
    assert len(logs) == 2 and "sharpen" in logs[0]


def test_figure_needs_a_method_and_ground_truth(tmp_path):
    ts = make_folder(str(tmp_path / "ts"), n=1)
    with pytest.raises(ValueError, match="at least one --method"):
        showcase.figure(ts, [], None)
