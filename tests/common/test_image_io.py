"""Tests for common.image_io: decoding conversions checked against PIL/NumPy recomputations."""
import glob
import io
import os

import numpy as np
import pytest
from PIL import Image

from common import image_io
from common.image_io import ImageReadError
from common.paths import SHARED_DATA

LFW = os.path.join(SHARED_DATA, "lfw")


def _rand(h=40, w=56, c=3, seed=0):
    rng = np.random.default_rng(seed)
    shape = (h, w, c) if c else (h, w)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("ext", [".png", ".bmp"])
def test_lossless_round_trip(tmp_path, ext):
    img = _rand()
    path = image_io.write_image(tmp_path / "sub" / f"a{ext}", img)  # makes parent dirs
    out = image_io.read_image(path)
    assert out.dtype == np.uint8 and out.shape == (40, 56, 3)
    np.testing.assert_array_equal(out, img)


def test_jpeg_round_trip_close(tmp_path):
    # a smooth image survives JPEG q95 with small error
    yy, xx = np.mgrid[0:48, 0:64]
    img = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).astype(np.uint8)
    out = image_io.read_image(image_io.write_image(tmp_path / "a.jpg", img))
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 2.0


def test_float_write_and_conversions(tmp_path):
    f = np.array([[[0.0, 0.5, 1.0], [-0.2, 1.3, 0.002]]], np.float32)
    u = image_io.to_uint8(f)
    np.testing.assert_array_equal(u, [[[0, 128, 255], [0, 255, 1]]])  # clip + round(0.5*255=127.5)->128
    np.testing.assert_allclose(image_io.to_float32(u), u / 255.0, rtol=0, atol=1e-7)
    assert image_io.to_float32(u).dtype == np.float32
    assert image_io.to_uint8(u) is u  # uint8 passes through
    np.testing.assert_array_equal(image_io.to_float32(f), f)
    out = image_io.read_image(image_io.write_image(tmp_path / "f.png", f))
    np.testing.assert_array_equal(out, u)
    # every uint8 value survives uint8 -> float -> uint8
    allv = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(image_io.to_uint8(image_io.to_float32(allv)), allv)


def test_grayscale_to_rgb(tmp_path):
    g = _rand(c=0)
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    out = image_io.read_image(tmp_path / "g.png")
    assert out.shape == (40, 56, 3)
    for ch in range(3):
        np.testing.assert_array_equal(out[..., ch], g)


def test_16bit_grayscale(tmp_path):
    g16 = (np.arange(40 * 56).reshape(40, 56) * 29).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = image_io.read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[..., 1], np.round(g16 / 257.0).astype(np.uint8))


def test_rgba_composited_on_black(tmp_path):
    rgba = _rand(c=4, seed=1)
    rgba[0, 0, 3] = 0
    rgba[0, 1, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = image_io.read_image(tmp_path / "a.png")
    expect = np.round(rgba[..., :3].astype(np.float64) * rgba[..., 3:] / 255.0)
    assert np.abs(out.astype(np.float64) - expect).max() <= 1  # integer rounding
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0])  # fully transparent -> black
    np.testing.assert_array_equal(out[0, 1], rgba[0, 1, :3])  # opaque -> unchanged


def test_palette_to_rgb(tmp_path):
    rgb = _rand(seed=2)
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.save(tmp_path / "p.png")
    out = image_io.read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 16


def test_exif_orientation_applied(tmp_path):
    # Orientation 6 = "rotate 90 CW to display": stored 40x56 (HxW) -> displayed 56x40.
    img = np.zeros((40, 56, 3), np.uint8)
    img[:5, :5] = [255, 0, 0]  # red in the stored top-left corner
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6
    pil.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
    out = image_io.read_image(tmp_path / "r.jpg")
    assert out.shape == (56, 40, 3)
    # after rotating 90 CW the stored top-left corner is at the top-right
    assert out[1, -2, 0] > 200 and out[1, -2, 1] < 60
    assert out[-2, 1, 0] < 60 and out[1, 1, 0] < 60
    # no tag -> unchanged orientation
    Image.fromarray(img).save(tmp_path / "n.jpg", quality=100)
    assert image_io.read_image(tmp_path / "n.jpg").shape == (40, 56, 3)


def test_corrupt_file_names_file(tmp_path):
    p = tmp_path / "junk.png"
    p.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageReadError, match="junk.png"):
        image_io.read_image(p)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_file_names_file(tmp_path, ext):
    good = tmp_path / f"good{ext}"
    image_io.write_image(good, _rand(64, 64, seed=3))
    data = good.read_bytes()
    bad = tmp_path / f"trunc{ext}"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=f"trunc\\{ext}.*truncated"):
        image_io.read_image(bad)


def test_unsupported_and_empty(tmp_path):
    Image.fromarray(_rand()).save(tmp_path / "x.gif")
    with pytest.raises(ImageReadError, match="x.gif"):
        image_io.read_image(tmp_path / "x.gif")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png.*empty"):
        image_io.read_image(tmp_path / "empty.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        image_io.read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="rec-7"):
        image_io.decode_image(b"\x89PNG garbage", name="rec-7")


def test_encode_decode_png():
    img = _rand(seed=4)
    data = image_io.encode_png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(image_io.decode_image(data), img)
    mask = np.random.default_rng(0).integers(0, 4, (40, 56, 1), dtype=np.uint8)
    m = np.asarray(Image.open(io.BytesIO(image_io.encode_png(mask))))
    assert m.ndim == 2
    np.testing.assert_array_equal(m, mask[..., 0])


def test_write_is_atomic_and_leaves_no_tmp(tmp_path):
    p = tmp_path / "a.png"
    image_io.write_image(p, _rand())
    image_io.write_image(p, _rand(seed=9))  # overwrite goes through rename
    np.testing.assert_array_equal(image_io.read_image(p), _rand(seed=9))
    assert sorted(os.listdir(tmp_path)) == ["a.png"]
    with pytest.raises(ValueError, match="shape"):
        image_io.write_image(tmp_path / "b.png", np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="extension"):
        image_io.write_image(tmp_path / "b.tif", _rand())
    assert sorted(os.listdir(tmp_path)) == ["a.png"]


def test_list_images(tmp_path):
    for rel in ["b.png", "a.JPG", "sub/c.jpeg", "sub/d.bmp", "notes.txt", ".hidden.png"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    got = [os.path.relpath(p, tmp_path) for p in image_io.list_images(tmp_path)]
    assert got == ["a.JPG", "b.png", "sub/c.jpeg", "sub/d.bmp"]
    got = [os.path.relpath(p, tmp_path) for p in image_io.list_images(tmp_path, recursive=False)]
    assert got == ["a.JPG", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        image_io.list_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nope"):
        image_io.list_images(tmp_path / "nope")


def test_contact_sheet(tmp_path):
    a = np.full((32, 32, 3), 200, np.uint8)
    b = np.full((16, 24), 0.5, np.float32)  # smaller, gray, float: resized to 32 high -> 48 wide
    c = np.zeros((32, 40, 1), np.uint8)
    sheet = image_io.contact_sheet([[a, b, c], [c, a]], labels=["blurred", "restored", "sharp"],
                                   path=tmp_path / "s.png", pad=2)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[-1] == 3
    # width: pad + 3 columns (max widths 40, 48, 40) + pads
    assert sheet.shape[1] == 2 + max(32, 40) + 2 + 48 + 2 + max(40, 32) + 2
    np.testing.assert_array_equal(image_io.read_image(tmp_path / "s.png"), sheet)
    # the label strip holds drawn (white) text; without labels it does not exist
    plain = image_io.contact_sheet([[a, b, c], [c, a]], pad=2)
    label_h = sheet.shape[0] - plain.shape[0]
    assert label_h > 5
    assert (sheet[:label_h] > 200).sum() > 20  # anti-aliased white text on grey 32
    np.testing.assert_array_equal(sheet[label_h:], plain)
    # the resized gray image sits in column 2 of row 1 with value 128 (0.5 -> 127.5 -> 128)
    y0, x0 = 2, 2 + 40 + 2
    np.testing.assert_array_equal(plain[y0:y0 + 32, x0:x0 + 48], 128)
    # image a is centred in the 40-wide column 1 of row 1
    np.testing.assert_array_equal(plain[y0:y0 + 32, 2 + 4:2 + 4 + 32], 200)


def test_real_lfw_images():
    files = sorted(glob.glob(os.path.join(LFW, "*", "*.jpg")))[:3]
    assert files, f"LFW test data missing under {LFW}"
    for f in files:
        img = image_io.read_image(f)
        assert img.shape == (150, 150, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(img, np.asarray(Image.open(f).convert("RGB")))
