"""An embedding cache on disk, so an interrupted face evaluation resumes where it stopped."""
from __future__ import annotations

import os

import numpy as np


class EmbeddingCache:
    """relative path -> embedding for one (condition, identity model), kept in one .npz.

    `data` is a plain dict; `save()` rewrites the file atomically (no file when `path` is None).
    """

    def __init__(self, path: str | None):
        self.path, self.data = path, {}
        if path and os.path.isfile(path):
            with np.load(path) as z:
                self.data = dict(zip(z["paths"].tolist(), z["emb"]))

    def save(self) -> None:
        if self.path and self.data:
            from common import image_io
            keys = sorted(self.data)
            emb = np.stack([self.data[k] for k in keys])
            image_io.atomic_write(self.path, lambda f: np.savez(f, paths=np.array(keys), emb=emb))
