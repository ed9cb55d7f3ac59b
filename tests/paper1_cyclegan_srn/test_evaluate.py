"""Table 1 on a stored-blur GoPro-layout folder, with measured --compare rows (no network needed)."""
import os

import numpy as np
import pytest
from skimage.io import imread
from skimage.metrics import peak_signal_noise_ratio

from paper1_cyclegan_srn import evaluate


def test_table1_on_a_gopro_folder_with_compare_rows(tmp_path):
    from tests.common.test_evaluation import make_folder
    root = make_folder(tmp_path / "gopro", n=2)
    from common.evaluation import load_test_set
    ts = load_test_set(root)
    names = sorted(os.listdir(os.path.join(root, "blurred")))
    want = np.mean([peak_signal_noise_ratio(imread(os.path.join(root, "sharp", n)),
                                            imread(os.path.join(root, "blurred", n)), data_range=255)
                    for n in names])
    t, res = evaluate.table1({}, {"ours": None, "gopro": ts}, compare=["unsharp"])
    assert res["Blurred input"][2] == pytest.approx(want, abs=1e-6)   # stored blur, not re-blurred
    assert res["unsharp (measured)"][:2] == [None, None] and res["unsharp (measured)"][2] > want
    for row in evaluate.PAPER_TABLE1:   # every row of the paper's table, with its numbers
        assert t.value(row, "GoPro PSNR", "paper") == evaluate.PAPER_TABLE1[row][2]
