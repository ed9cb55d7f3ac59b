"""Four-class face masks drawn from 68 iBUG landmarks (paper 3, UMSN, Sec. 3: m1..m4).

UMSN trains one branch per semantic class and needs a class map for every face. Helen's parsing
labels are not available offline, so we draw the classes from the 68-point iBUG / 300-W markup:

    0  background
    1  face skin       jaw line 0..16 closed by a forehead line above the brows
    2  facial parts    brows 17..26 (thickened), eyes 36..47, nose 27..35, lips + mouth 48..59
    3  hair            APPROXIMATED (see below)

Hair approximation. Landmarks say nothing about hair, so class 3 is a geometric guess: a head
outline is built by pushing the jaw points outwards from the face centre (x1.15) and lifting the
forehead line a further ``hair_height`` face-heights; hair is that head region minus skin and parts,
kept only above the eye line (no beards, no hair below the ears). On a typical frontal LFW crop
this gives a cap above the forehead plus narrow temple strips; it is wrong for bald heads, hats and
long hair. Masks from real parsing labels should be preferred when a user has them.

"Up" is taken along the face axis (chin -> brow centre), so tilted faces get tilted masks.
Everything is clipped to the image, so landmarks partly outside the image are fine.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

BACKGROUND, SKIN, PARTS, HAIR = 0, 1, 2, 3
NUM_CLASSES = 4

# iBUG 68-point index groups (0-based).
JAW = list(range(0, 17))
RIGHT_BROW = list(range(17, 22))
LEFT_BROW = list(range(22, 27))
NOSE = list(range(27, 36))
RIGHT_EYE = list(range(36, 42))
LEFT_EYE = list(range(42, 48))
OUTER_LIPS = list(range(48, 60))
INNER_LIPS = list(range(60, 68))


def _face_frame(pts: np.ndarray):
    """Return (up unit vector, face height) from chin (8) to the brow centre (17..26)."""
    brow_centre = pts[17:27].mean(axis=0)
    chin = pts[8]
    axis = brow_centre - chin
    height = float(np.linalg.norm(axis))
    if height < 1e-6:
        raise ValueError("landmarks68 are degenerate: brow centre and chin coincide")
    return axis / height, height


def _fill(draw: ImageDraw.ImageDraw, polygon: np.ndarray, value: int) -> None:
    draw.polygon([(float(x), float(y)) for x, y in polygon], fill=value, outline=value)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain; points [N,2] -> hull vertices [M,2] counter-clockwise."""
    pts = sorted(map(tuple, np.asarray(points, np.float64)))
    if len(pts) <= 2:
        return np.asarray(pts)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1])


def landmarks_to_class_mask(landmarks68, height: int, width: int, *, forehead: float = 0.35,
                            hair_height: float = 0.45, brow_thickness: float = 0.05) -> np.ndarray:
    """Draw the 4-class mask of one face.

    Args:
      landmarks68: [68, 2] (x, y) pixel coordinates in iBUG 300-W order.
      height, width: size of the output mask.
      forehead: forehead height above the brows, in face heights (chin -> brow centre distance).
      hair_height: extra height of the hair cap above the forehead, in face heights.
      brow_thickness: half-thickness of a brow polygon, in face heights.

    Returns:
      uint8 [height, width] with ids 0 background, 1 skin, 2 brows/eyes/nose/lips/mouth, 3 hair.
    """
    pts = np.asarray(landmarks68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"landmarks68 must have shape [68, 2] (x, y), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("landmarks68 contains NaN or inf")
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    height, width = int(height), int(width)
    up, face_h = _face_frame(pts)

    # Skin: jaw 0..16, then the brows lifted by `forehead` face heights, walked back 26..17.
    brows = pts[17:27]
    forehead_line = brows[::-1] + forehead * face_h * up
    skin_poly = np.concatenate([pts[JAW], forehead_line], axis=0)

    # Head outline for hair: jaw pushed outwards from the face centre, forehead lifted further.
    centre = pts[JAW + list(range(17, 27))].mean(axis=0)
    jaw_out = centre + 1.15 * (pts[JAW] - centre)
    top = brows[::-1] + (forehead + hair_height) * face_h * up
    top = centre + 1.15 * (top - centre)
    head_poly = np.concatenate([jaw_out, top], axis=0)

    img = Image.new("L", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    _fill(draw, head_poly, HAIR)
    hair_region = np.asarray(img) == HAIR
    # Keep hair only above the eye line (projection on the up axis beyond the eyes' mean).
    eye_level = float(pts[36:48].mean(axis=0) @ up)
    yy, xx = np.mgrid[0:height, 0:width]
    above_eyes = (xx * up[0] + yy * up[1]) > eye_level
    mask = np.where(hair_region & above_eyes, HAIR, BACKGROUND).astype(np.uint8)

    img = Image.fromarray(mask)
    draw = ImageDraw.Draw(img)
    _fill(draw, skin_poly, SKIN)
    for brow in (RIGHT_BROW, LEFT_BROW):
        line = pts[brow]
        thick = brow_thickness * face_h * up
        _fill(draw, np.concatenate([line + thick, line[::-1] - thick]), PARTS)
    for eye in (RIGHT_EYE, LEFT_EYE):
        _fill(draw, pts[eye], PARTS)
    _fill(draw, _convex_hull(pts[NOSE]), PARTS)
    _fill(draw, pts[OUTER_LIPS], PARTS)
    return np.asarray(img, dtype=np.uint8).copy()


def class_areas(mask: np.ndarray) -> np.ndarray:
    """Fraction of pixels of each class 0..3 in a mask -> float64 [4]."""
    counts = np.bincount(np.asarray(mask, np.int64).ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
    return counts / max(mask.size, 1)
