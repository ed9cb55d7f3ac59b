"""common.face.masks: 4-class masks from synthetic 68-point landmarks (no face backend needed)."""
import numpy as np
import pytest

from common.face import masks
from common.face.masks import BACKGROUND, HAIR, PARTS, SKIN, landmarks_to_class_mask


def synthetic_landmarks(cx=64.0, top=40.0, scale=1.0):
    """A frontal 68-point iBUG layout: jaw a lower half ellipse, brows y=top, eyes, nose, mouth."""
    s = scale
    pts = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)                                    # jaw 0..16, left ear -> chin -> right ear
    pts[0:17] = np.c_[cx - 40 * s * np.cos(t), top + 10 * s + 60 * s * np.sin(t)]
    pts[17:22] = np.c_[np.linspace(cx - 32 * s, cx - 8 * s, 5), top - np.array([0, 3, 4, 3, 0]) * s]
    pts[22:27] = np.c_[np.linspace(cx + 8 * s, cx + 32 * s, 5), top - np.array([0, 3, 4, 3, 0]) * s]
    pts[27:31] = np.c_[np.full(4, cx), np.linspace(top + 8 * s, top + 30 * s, 4)]
    pts[31:36] = np.c_[np.linspace(cx - 8 * s, cx + 8 * s, 5), np.full(5, top + 34 * s)]
    a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    for start, ex in ((36, cx - 20 * s), (42, cx + 20 * s)):
        pts[start:start + 6] = np.c_[ex + 8 * s * np.cos(a + np.pi), top + 12 * s + 3 * s * np.sin(a + np.pi)]
    b = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts[48:60] = np.c_[cx + 16 * s * np.cos(b + np.pi), top + 48 * s + 6 * s * np.sin(b + np.pi)]
    c = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    pts[60:68] = np.c_[cx + 10 * s * np.cos(c + np.pi), top + 48 * s + 2 * s * np.sin(c + np.pi)]
    return pts


def test_mask_classes_and_areas():
    pts = synthetic_landmarks()
    m = landmarks_to_class_mask(pts, 128, 128)
    assert m.shape == (128, 128) and m.dtype == np.uint8
    assert set(np.unique(m)) == {BACKGROUND, SKIN, PARTS, HAIR}
    areas = masks.class_areas(m)
    np.testing.assert_allclose(areas.sum(), 1.0)
    np.testing.assert_allclose(areas, np.bincount(m.ravel(), minlength=4) / m.size)
    # skin is the biggest face class, parts a fraction of skin, hair smaller than the face
    assert 0.15 < areas[SKIN] < 0.6
    assert 0.1 * areas[SKIN] < areas[PARTS] < 0.6 * areas[SKIN]
    assert 0.02 < areas[HAIR] < areas[SKIN]


def test_mask_geometry():
    pts = synthetic_landmarks()
    m = landmarks_to_class_mask(pts, 128, 128)
    # known points: eye centres, nose tip, mouth centre are parts; cheeks skin; forehead skin
    for x, y in [(44, 52), (84, 52), (64, 70), (64, 88)]:
        assert m[y, x] == PARTS, (x, y)
    for x, y in [(40, 80), (88, 80), (64, 33)]:
        assert m[y, x] == SKIN, (x, y)
    assert m[12, 64] == HAIR                 # above the forehead
    assert m[125, 2] == BACKGROUND and m[125, 125] == BACKGROUND
    # parts inside the skin's bounding box; hair only above the eye line (y < 52 here)
    face = np.argwhere((m == SKIN) | (m == PARTS))
    parts = np.argwhere(m == PARTS)
    assert parts[:, 0].min() >= face[:, 0].min() and parts[:, 0].max() <= face[:, 0].max()
    assert parts[:, 1].min() >= face[:, 1].min() and parts[:, 1].max() <= face[:, 1].max()
    assert np.argwhere(m == HAIR)[:, 0].max() < pts[36:48, 1].mean()
    # skin stays inside the jaw's x range and ends at the chin
    skin = np.argwhere(m == SKIN)
    assert skin[:, 1].min() >= np.floor(pts[0:17, 0].min()) - 1
    assert skin[:, 0].max() <= np.ceil(pts[8, 1]) + 1


def test_mask_translation_equivariant_and_clipped():
    pts = synthetic_landmarks()
    m = landmarks_to_class_mask(pts, 128, 128)
    shifted = landmarks_to_class_mask(pts + [7, 5], 128, 128)
    np.testing.assert_array_equal(shifted[5:, 7:], m[:-5, :-7])
    # face partly outside the image: still valid, clipped
    out = landmarks_to_class_mask(pts + [-50, 0], 128, 128)
    assert out.shape == (128, 128) and set(np.unique(out)) <= {0, 1, 2, 3}
    assert (out == SKIN).sum() < (m == SKIN).sum()


def test_mask_follows_rotation():
    pts = synthetic_landmarks(cx=64, top=44)
    ang = np.deg2rad(90)  # face rotated so that "up" points to +x
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    centre = np.array([64.0, 64.0])
    r = (pts - centre) @ rot.T + centre
    m = landmarks_to_class_mask(r, 128, 128)
    hair = np.argwhere(m == HAIR)
    # up axis is (brow centre - chin); hair lies on the brow side of the eyes along it
    up = r[17:27].mean(0) - r[8]
    up /= np.linalg.norm(up)
    eye_level = r[36:48].mean(0) @ up
    assert len(hair) > 0 and np.all(hair[:, ::-1] @ up > eye_level)


@pytest.mark.parametrize("bad", [np.zeros((67, 2)), np.full((68, 2), np.nan), np.zeros((68, 3))])
def test_mask_rejects_bad_landmarks(bad):
    with pytest.raises(ValueError, match="landmarks68"):
        landmarks_to_class_mask(bad, 64, 64)


def test_mask_rejects_bad_size():
    with pytest.raises(ValueError, match="positive"):
        landmarks_to_class_mask(synthetic_landmarks(), 0, 64)
