"""NumPy references about blur kernels, shared by the tests of common.blur, data.build and
common.face (independent of the code under test)."""
import numpy as np


def centroid_offset(kernels):
    """(dy, dx) of the centroid of a kernel [S, S] (or of each kernel of a stack [K, S, S]) from
    its centre pixel (S // 2, S // 2), in pixels."""
    k = np.asarray(kernels, np.float64)
    y, x = np.mgrid[:k.shape[-2], :k.shape[-1]]
    mass = k.sum((-2, -1))
    return ((k * y).sum((-2, -1)) / mass - k.shape[-2] // 2,
            (k * x).sum((-2, -1)) / mass - k.shape[-1] // 2)
