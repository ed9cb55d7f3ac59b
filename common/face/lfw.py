"""LFW layout: the official `pairs.txt` (10 folds), balanced subsets of it, identities on disk.

    pairs = read_pairs("lfw_pairs.txt")          # [Pair(a, b, same, fold)], paths relative to LFW
    subset_pairs(pairs, 50)                      # first 50 same + 50 different pairs of each fold
    balanced_image_order(pairs)                  # images in the order a resumable run needs them
    images_by_identity(lfw_dir)                  # {"Name": ["Name/Name_0001.jpg", ...]}
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class Pair:
    a: str      # relative path "<Name>/<Name>_0001.jpg"
    b: str
    same: bool
    fold: int


def lfw_relpath(name: str, index: int) -> str:
    return f"{name}/{name}_{int(index):04d}.jpg"


def read_pairs(path: str) -> list[Pair]:
    """Parse an LFW pairs.txt ("<folds> <n>" header, then per fold n same + n different lines)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"LFW pairs file {path} not found (--pairs)")
    with open(path) as f:
        lines = [ln.split() for ln in f if ln.strip()]
    try:
        num_folds, n = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError) as e:
        raise ValueError(f"{path}: first line must be '<folds> <pairs per class>', got {lines[:1]}") from e
    body = lines[1:]
    if len(body) != num_folds * 2 * n:
        raise ValueError(f"{path}: header says {num_folds} folds x 2 x {n} pairs but the file has "
                         f"{len(body)} pair lines")
    pairs = []
    for i, p in enumerate(body):
        fold = i // (2 * n)
        if len(p) == 3:
            pairs.append(Pair(lfw_relpath(p[0], p[1]), lfw_relpath(p[0], p[2]), True, fold))
        elif len(p) == 4:
            pairs.append(Pair(lfw_relpath(p[0], p[1]), lfw_relpath(p[2], p[3]), False, fold))
        else:
            raise ValueError(f"{path}: line {i + 2} has {len(p)} fields, expected 3 or 4: {p}")
    return pairs


def subset_pairs(pairs: list[Pair], per_fold: int | None) -> list[Pair]:
    """Keep the first `per_fold` same and first `per_fold` different pairs of every fold."""
    if not per_fold:
        return list(pairs)
    out, seen = [], {}
    for p in pairs:
        key = (p.fold, p.same)
        if seen.get(key, 0) < per_fold:
            seen[key] = seen.get(key, 0) + 1
            out.append(p)
    return out


def unique_images(pairs: list[Pair]) -> list[str]:
    return sorted({p.a for p in pairs} | {p.b for p in pairs})


def pairs_per_class(pairs: list[Pair]) -> int:
    """The fewest same or different pairs any fold has (the largest `subset_pairs` argument)."""
    counts = {}
    for p in pairs:
        counts[(p.fold, p.same)] = counts.get((p.fold, p.same), 0) + 1
    return min(counts.values()) if counts else 0


def balanced_image_order(pairs: list[Pair]) -> list[str]:
    """Unique images in the order in which a round-robin over (rank within fold and class, fold,
    same/different) first needs them, so that a partly filled embedding cache always covers
    `subset_pairs(pairs, n)` for some n: an interrupted full run still gives a balanced 10-fold
    result."""
    rank, seen = [], {}
    for p in pairs:
        key = (p.fold, p.same)
        rank.append(seen.get(key, 0))
        seen[key] = rank[-1] + 1
    order = sorted(range(len(pairs)), key=lambda i: (rank[i], pairs[i].fold, not pairs[i].same))
    out, have = [], set()
    for i in order:
        for rel in (pairs[i].a, pairs[i].b):
            if rel not in have:
                have.add(rel)
                out.append(rel)
    return out


def image_subset(pairs: list[Pair], num_images: int, seed: int = 0) -> list[str]:
    """The pairs' images, or a seeded random `num_images` of them (sorted); 0 = all."""
    rels = unique_images(pairs)
    if num_images and len(rels) > num_images:
        rng = np.random.default_rng(seed)
        rels = sorted(rng.choice(rels, num_images, replace=False).tolist())
    return rels


def images_by_identity(lfw_dir: str) -> dict[str, list[str]]:
    """{identity: sorted relative image paths} of an LFW-layout folder (<Name>/<Name>_0001.jpg)."""
    by_id = {}
    for name in sorted(os.listdir(lfw_dir)):
        d = os.path.join(lfw_dir, name)
        if os.path.isdir(d):
            by_id[name] = [f"{name}/{f}" for f in sorted(os.listdir(d))
                           if f.lower().endswith(IMAGE_EXTENSIONS)]
    return by_id
