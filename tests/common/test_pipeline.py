"""Tests for common.pipeline.make_dataset.

Records are built so that every paired field is a known pixelwise function of "sharp"
(blurred = 255 - sharp, mask = sharp[..., 0] % 4) and sharp is random noise, so any mismatch in
crop window or flip between fields shows; crops are located in the original image to check the
window itself. On-the-fly blur is checked against scipy.ndimage.convolve.
"""
import os

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from common import image_io, pipeline, tfrecord
from common.paths import SHARED_DATA

H, W, N = 48, 56, 12
LFW_PERSON = os.path.join(SHARED_DATA, "lfw/Abdullah_Gul")


def _sharp(i):
    return np.random.default_rng(100 + i).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    with tfrecord.ShardedWriter(d, "train", num_shards=2) as w:
        for i in range(N):
            s = _sharp(i)
            w.write(tfrecord.make_example(
                sharp=s, blurred=255 - s, mask=s[..., 0] % 4,
                landmarks=np.array([[10.0, 20.0], [30.5, 40.25]], np.float32) + i,
                identity=i, source=f"img{i}"))
    return str(d / "train-*")


def _locate(crop_u8, orig):
    """Returns (oy, ox, flipped) of the window of `orig` equal to `crop_u8`, or None."""
    ch, cw = crop_u8.shape[:2]
    for flipped in (False, True):
        c = crop_u8[:, ::-1] if flipped else crop_u8
        for oy in range(orig.shape[0] - ch + 1):
            for ox in range(orig.shape[1] - cw + 1):
                if np.array_equal(orig[oy:oy + ch, ox:ox + cw], c):
                    return oy, ox, flipped
    return None


def _u8(x):
    return np.round(np.asarray(x) * 255).astype(np.uint8)


def test_training_shapes_dtypes_ranges(records):
    ds = pipeline.make_dataset(records, 5, crop=32, keys=("sharp", "blurred", "mask", "identity", "source"),
                               seed=0)
    spec = ds.element_spec
    assert spec["sharp"].shape == (5, 32, 32, 3) and spec["sharp"].dtype == tf.float32
    assert spec["mask"].shape == (5, 32, 32, 1) and spec["mask"].dtype == tf.int32
    for b in ds.take(4):  # repeat is on by default: 4 batches of 5 > 12 records
        s, bl, m = b["sharp"].numpy(), b["blurred"].numpy(), b["mask"].numpy()
        assert s.min() >= 0 and s.max() <= 1 and bl.min() >= 0 and bl.max() <= 1
        assert set(np.unique(m)) <= {0, 1, 2, 3}
        assert b["identity"].dtype == tf.int64 and b["source"].dtype == tf.string


def test_paired_crop_and_flip_are_shared(records):
    ds = pipeline.make_dataset(records, 4, crop=(32, 40), keys=("sharp", "blurred", "mask", "identity"),
                               seed=3)
    offsets, flips = set(), set()
    for b in ds.take(6):
        s = b["sharp"].numpy()
        # same window + same flip in every field
        np.testing.assert_allclose(b["blurred"].numpy(), 1.0 - s, atol=1e-6)
        np.testing.assert_array_equal(b["mask"].numpy()[..., 0], _u8(s[..., 0]) % 4)
        for j, ident in enumerate(b["identity"].numpy()):
            found = _locate(_u8(s[j]), _sharp(int(ident)))
            assert found is not None, "crop is not a window of the original image"
            offsets.add(found[:2])
            flips.add(found[2])
    assert flips == {False, True}  # flip is applied (to all fields, checked above)
    assert len(offsets) > 5  # random windows


def test_eval_centre_crop_deterministic(records):
    def run():
        ds = pipeline.make_dataset(records, 5, crop=32, training=False,
                                   keys=("sharp", "mask", "identity", "landmarks"))
        return list(ds)

    first, second = run(), run()
    assert [len(b["identity"]) for b in first] == [5, 5, 2]  # no repeat, no drop_remainder
    ids = np.concatenate([b["identity"].numpy() for b in first])
    assert sorted(ids) == list(range(N))
    oy, ox = (H - 32) // 2, (W - 32) // 2
    for b1, b2 in zip(first, second):
        for k in b1:
            np.testing.assert_array_equal(b1[k].numpy(), b2[k].numpy())
        for j, ident in enumerate(b1["identity"].numpy()):
            orig = _sharp(int(ident))
            np.testing.assert_array_equal(_u8(b1["sharp"][j]), orig[oy:oy + 32, ox:ox + 32])
            # landmarks move with the crop window
            expect = np.array([[10.0, 20.0], [30.5, 40.25]]) + ident - [ox, oy]
            np.testing.assert_allclose(b1["landmarks"][j].numpy(), expect, atol=1e-5)


def test_seed_reproducibility(records):
    def first_batches(seed):
        ds = pipeline.make_dataset(records, 4, crop=32, seed=seed, keys=("sharp", "identity"))
        return [b["sharp"].numpy() for b in ds.take(4)]

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


def test_on_the_fly_blur_matches_scipy(records):
    rng = np.random.default_rng(0)
    k1 = rng.random((7, 7)).astype(np.float32)
    k1[:, :3] = 0  # asymmetric, so a missing flip (correlation vs convolution) would show
    k2 = np.zeros((7, 7), np.float32)
    k2[3, 1:6] = 1  # horizontal motion
    bank = np.stack([k1 / k1.sum(), k2 / k2.sum()])
    ds = pipeline.make_dataset(records, 4, crop=32, kernel_bank=bank, noise_sigma=0.0, quantize=False,
                               keys=("sharp", "blurred", "kernel"), seed=1)
    used = set()
    for b in ds.take(3):
        s, bl, ks = b["sharp"].numpy(), b["blurred"].numpy(), b["kernel"].numpy()
        for j in range(len(s)):
            idx = [i for i in range(2) if np.array_equal(ks[j], bank[i])]
            assert len(idx) == 1
            used.add(idx[0])
            ref = np.stack([scipy.ndimage.convolve(s[j, ..., c].astype(np.float64), ks[j], mode="reflect")
                            for c in range(3)], -1)
            np.testing.assert_allclose(bl[j], ref, atol=1e-5)
    assert used == {0, 1}
    # a bank of one kernel, without asking for "kernel": the records' own blurred is replaced
    ds = pipeline.make_dataset(records, 3, crop=32, kernel_bank=bank[:1], keys=("sharp", "blurred"), seed=1,
                               quantize=False)
    b = next(iter(ds))
    assert set(b) == {"sharp", "blurred"}
    ref = np.stack([scipy.ndimage.convolve(b["sharp"].numpy()[0, ..., c], bank[0], mode="reflect")
                    for c in range(3)], -1)
    np.testing.assert_allclose(b["blurred"].numpy()[0], ref, atol=1e-5)


def test_on_the_fly_noise_and_quantize(records):
    bank = np.full((1, 5, 5), 1 / 25, np.float32)
    clean = next(iter(pipeline.make_dataset(records, 8, crop=32, kernel_bank=bank, seed=2)))
    noisy = next(iter(pipeline.make_dataset(records, 8, crop=32, kernel_bank=bank, noise_sigma=0.05,
                                            quantize=True, seed=2)))
    np.testing.assert_array_equal(clean["sharp"].numpy(), noisy["sharp"].numpy())
    resid = noisy["blurred"].numpy() - clean["blurred"].numpy()
    assert abs(resid.std() - 0.05) < 0.005 and abs(resid.mean()) < 0.005
    q = noisy["blurred"].numpy() * 255
    np.testing.assert_allclose(q, np.round(q), atol=1e-3)


def test_resize(records):
    ds = pipeline.make_dataset(records, 12, training=False, resize=(24, 28),
                               keys=("sharp", "mask", "landmarks", "identity"))
    b = next(iter(ds))
    assert b["sharp"].shape == (12, 24, 28, 3) and b["mask"].shape == (12, 24, 28, 1)
    s = b["sharp"].numpy()
    # downscaling by 2 keeps each image's mean (antialiased bilinear) within rounding
    for j, ident in enumerate(b["identity"].numpy()):
        assert abs(s[j].mean() - _sharp(int(ident)).mean() / 255) < 0.01
    # masks resized nearest: still class ids; sharp is blurred by the resize, mask is not
    assert set(np.unique(b["mask"].numpy())) <= {0, 1, 2, 3}
    j, ident = 0, int(b["identity"][0])
    expect = (np.array([[10.0, 20.0], [30.5, 40.25]]) + ident + 0.5) * 0.5 - 0.5
    np.testing.assert_allclose(b["landmarks"][j].numpy(), expect, atol=1e-5)
    # resize smaller than crop is refused up front
    with pytest.raises(ValueError, match="larger than resize"):
        pipeline.make_dataset(records, 2, crop=32, resize=(24, 28))


def test_resize_short_keeps_each_aspect(records):
    """resize_short=S: the shorter side becomes S, the aspect is kept (48x56 -> 24x28 here, the
    same images and landmarks as resize=(24, 28)), then the centre crop."""
    keys = ("sharp", "mask", "landmarks", "identity")
    short = next(iter(pipeline.make_dataset(records, 12, training=False, resize_short=24,
                                            keys=keys)))
    fixed = next(iter(pipeline.make_dataset(records, 12, training=False, resize=(24, 28),
                                            keys=keys)))
    assert short["sharp"].shape == (12, 24, 28, 3)
    for k in keys:
        np.testing.assert_array_equal(short[k].numpy(), fixed[k].numpy())
    cropped = next(iter(pipeline.make_dataset(records, 12, crop=24, training=False,
                                              resize_short=24, keys=("sharp",))))
    np.testing.assert_array_equal(cropped["sharp"].numpy(), short["sharp"].numpy()[:, :, 2:26])
    with pytest.raises(ValueError, match="not both"):
        pipeline.make_dataset(records, 2, resize=(24, 28), resize_short=24)


def test_folder_source(tmp_path):
    imgs = {}
    for i in range(5):
        imgs[f"f{i}.png"] = np.random.default_rng(i).integers(0, 256, (40, 44, 3), dtype=np.uint8)
        image_io.write_image(tmp_path / f"f{i}.png", imgs[f"f{i}.png"])
    ds = pipeline.make_dataset(str(tmp_path), 5, crop=32, training=False, keys=("sharp", "source"))
    b = next(iter(ds))
    for s, src in zip(b["sharp"].numpy(), b["source"].numpy()):
        orig = imgs[os.path.basename(src.decode())]
        np.testing.assert_array_equal(_u8(s), orig[4:36, 6:38])
    ds = pipeline.make_dataset(str(tmp_path), 2, crop=32, seed=0, keys=("sharp",))
    for s in next(iter(ds))["sharp"].numpy():
        assert any(_locate(_u8(s), o) is not None for o in imgs.values())
    with pytest.raises(ValueError, match="kernel_bank"):
        pipeline.make_dataset(str(tmp_path), 2, crop=32)  # blurred from a folder needs a bank
    with pytest.raises(ValueError, match="mask"):
        pipeline.make_dataset(str(tmp_path), 2, crop=32, keys=("sharp", "mask"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        pipeline.make_dataset(str(tmp_path / "empty"), 2, crop=32, keys=("sharp",))


def test_real_lfw_folder_with_blur():
    files = image_io.list_images(LFW_PERSON)
    bank = np.zeros((1, 9, 9), np.float32)
    bank[0, 4, :] = 1 / 9
    ds = pipeline.make_dataset(LFW_PERSON, len(files), crop=128, training=False, kernel_bank=bank, quantize=False,
                               keys=("sharp", "blurred", "source"))
    b = next(iter(ds))
    assert b["sharp"].shape == (len(files), 128, 128, 3)
    for s, bl, src in zip(b["sharp"].numpy(), b["blurred"].numpy(), b["source"].numpy()):
        orig = image_io.read_image(src.decode())
        np.testing.assert_array_equal(_u8(s), orig[11:139, 11:139])
        ref = scipy.ndimage.convolve1d(s, bank[0, 4], axis=1, mode="reflect")
        np.testing.assert_allclose(bl, ref, atol=1e-5)
        assert np.abs(np.diff(bl, axis=1)).mean() < np.abs(np.diff(s, axis=1)).mean()  # blurred


def test_error_messages(records, tmp_path):
    missing = str(tmp_path / "nothing-*.tfrecord")
    with pytest.raises(FileNotFoundError, match="nothing-"):
        pipeline.make_dataset(missing, 2, crop=32)
    with tfrecord.ShardedWriter(tmp_path, "sharponly", 1) as w:
        w.write(tfrecord.make_example(sharp=_sharp(0)))
    with pytest.raises(ValueError, match=r"sharponly-00000-of-00001\.tfrecord have no key .image/blurred."):
        pipeline.make_dataset(str(tmp_path / "sharponly-*"), 2, crop=32)
    ds = pipeline.make_dataset(records, 2, crop=64, seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="pass resize"):
        next(iter(ds))
    with pytest.raises(ValueError, match="landmarks"):
        pipeline.make_dataset(records, 2, crop=32, keys=("sharp", "landmarks"))
    with pytest.raises(ValueError, match="needs an image key"):
        pipeline.make_dataset(records, 2, crop=32, training=False, keys=("landmarks",))
    with pytest.raises(ValueError, match="unknown key"):
        pipeline.make_dataset(records, 2, crop=32, keys=("image/sharp",))
    with pytest.raises(ValueError, match="odd"):
        pipeline.make_dataset(records, 2, crop=32, kernel_bank=np.ones((2, 4, 4), np.float32))


def test_on_the_fly_noise_level_range(records):
    """noise_sigma=(lo, hi): one level per example, uniform in [lo, hi]."""
    bank = np.ones((1, 1, 1), np.float32)  # delta kernel: blurred - sharp is the noise alone
    batch = next(iter(pipeline.make_dataset(records, 8, crop=48, kernel_bank=bank,
                                            noise_sigma=(0.0, 0.08), seed=3)))
    resid = (batch["blurred"] - batch["sharp"]).numpy().reshape(8, -1)
    # Clipping at 0/1 shrinks the std a little; the levels must differ across the batch.
    stds = resid.std(axis=1)
    assert stds.max() < 0.085 and stds.max() - stds.min() > 0.01
    with pytest.raises(ValueError, match="lo <= hi"):
        pipeline.make_dataset(records, 2, crop=16, kernel_bank=bank, noise_sigma=(0.05, 0.01))


def test_shard_reads_disjoint_parts(records, tmp_path):
    """shard=(n, i): whole files when there are >= n files, else every n-th record; together the
    shards hold every example once. A bad shard is a clear error."""
    def sources(pattern, shard):
        ds = pipeline.make_dataset(pattern, 1, training=False, keys=("source",), shard=shard)
        return sorted(b["source"][0].numpy().decode() for b in ds)

    every = sources(records, None)
    by_file = [sources(records, (2, i)) for i in range(2)]  # 2 files: one each
    by_record = [sources(records, (3, i)) for i in range(3)]  # 2 files < 3: records
    for parts in (by_file, by_record):
        assert all(parts) and sorted(sum(parts, [])) == every
        assert not set(parts[0]) & set(parts[1])
    with pytest.raises(ValueError, match="shard"):
        pipeline.make_dataset(records, 1, shard=(2, 2))


def test_noise_on_stored_pairs(records):
    """Without a kernel bank, noise_sigma is added to the stored "blurred" image: the difference
    to the same batch read without noise is zero-mean noise of about that level (clipped at
    0/1), one level per example with a range; "sharp" is untouched."""
    kw = dict(crop=48, keys=("sharp", "blurred"), seed=5)
    clean = next(iter(pipeline.make_dataset(records, 8, **kw)))
    noisy = next(iter(pipeline.make_dataset(records, 8, noise_sigma=0.05, **kw)))
    np.testing.assert_array_equal(clean["sharp"].numpy(), noisy["sharp"].numpy())
    resid = (noisy["blurred"] - clean["blurred"]).numpy()
    assert 0.035 < resid.std() < 0.051 and abs(resid.mean()) < 0.005
    ranged = next(iter(pipeline.make_dataset(records, 8, noise_sigma=(0.0, 0.08), **kw)))
    stds = (ranged["blurred"] - clean["blurred"]).numpy().reshape(8, -1).std(axis=1)
    assert stds.max() - stds.min() > 0.01
