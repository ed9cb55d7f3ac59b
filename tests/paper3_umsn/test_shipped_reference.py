"""The shipped .keras file keeps loading into the same network: its outputs on two committed test
faces equal the outputs stored when the reference was made (before any refactor of the model code).

Regenerate the reference ONLY when the shipped weights themselves change:

    python -c "import tests.paper3_umsn.test_shipped_reference as t; t.write_reference()"
"""
import os

import numpy as np

from common import image_io
from paper3_umsn import deblur

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
REFERENCE = os.path.join(HERE, "data", "umsn_small_reference.npz")
FACES = os.path.join(REPO, "data", "sample", "test_faces")


def _inputs(names):
    """Top-left 64x64 crops of the named sample test faces, float32 [N,64,64,3] in [0, 1]."""
    return np.stack([image_io.to_float32(image_io.read_image(os.path.join(FACES, n)))[:64, :64]
                     for n in names])


def write_reference(path=REFERENCE):
    names = sorted(os.listdir(FACES))[:2]
    outputs = np.asarray(deblur.load_model(None)(_inputs(names)), np.float32)
    np.savez_compressed(path, names=np.array(names), outputs=outputs)


def test_shipped_umsn_small_outputs_equal_the_stored_reference():
    with np.load(REFERENCE) as z:
        names, expected = z["names"].tolist(), z["outputs"]
    x = _inputs(names)
    out = np.asarray(deblur.load_model(None)(x), np.float32)
    assert out.shape == expected.shape == x.shape
    # The network really changes the image (so equality below says something about the weights).
    assert np.abs(expected - x).mean() > 1e-3
    # float32 round-off across CPUs / oneDNN kernels only; a wrong or missing weight is >> 1e-4.
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=0)
