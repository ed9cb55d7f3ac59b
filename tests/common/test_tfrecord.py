"""Tests for common.tfrecord: schema round trip, shard names, atomic sharded writer."""
import os

import numpy as np
import pytest
import tensorflow as tf

from common import tfrecord
from common.tfrecord import ShardedWriter, make_example, parse_example


def _record(seed=0, h=40, w=48):
    rng = np.random.default_rng(seed)
    k = rng.random((7, 7)).astype(np.float32)
    return dict(
        sharp=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        blurred=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        mask=rng.integers(0, 4, (h, w), dtype=np.uint8),
        landmarks=(rng.random((68, 2)) * [w, h]).astype(np.float32),
        identity=int(rng.integers(0, 10**12)),
        kernel=k / k.sum(),
        source=f"lfw/person_{seed}/img.jpg",
    )


def test_round_trip_every_key_bit_exact():
    rec = _record()
    ex = make_example(**rec)
    out = parse_example(ex.SerializeToString(), keys=tfrecord.ALL_KEYS)
    assert set(out) == set(tfrecord.ALL_KEYS)
    assert out["image/sharp"].dtype == tf.uint8 and out["image/sharp"].shape == (40, 48, 3)
    np.testing.assert_array_equal(out["image/sharp"].numpy(), rec["sharp"])
    np.testing.assert_array_equal(out["image/blurred"].numpy(), rec["blurred"])
    assert out["mask/classes"].dtype == tf.uint8 and out["mask/classes"].shape == (40, 48, 1)
    np.testing.assert_array_equal(out["mask/classes"].numpy()[..., 0], rec["mask"])
    assert out["landmarks"].dtype == tf.float32 and out["landmarks"].shape == (68, 2)
    np.testing.assert_array_equal(out["landmarks"].numpy(), rec["landmarks"])
    assert out["identity"].dtype == tf.int64 and int(out["identity"]) == rec["identity"]
    assert out["kernel"].dtype == tf.float32 and out["kernel"].shape == (7, 7)
    np.testing.assert_array_equal(out["kernel"].numpy(), rec["kernel"])
    assert out["source"].numpy().decode() == rec["source"]


def test_float_and_gray_inputs_and_png_bytes():
    rng = np.random.default_rng(1)
    f = rng.random((32, 40, 3)).astype(np.float32)
    gray = rng.integers(0, 256, (32, 40), dtype=np.uint8)
    ex = make_example(sharp=f, blurred=gray)
    out = parse_example(ex.SerializeToString())
    np.testing.assert_array_equal(out["image/sharp"].numpy(), np.round(f * 255).astype(np.uint8))
    np.testing.assert_array_equal(out["image/blurred"].numpy(), np.repeat(gray[..., None], 3, -1))
    # already-encoded PNG bytes are stored as is
    from common import image_io
    png = image_io.encode_png(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    ex = make_example(sharp=png)
    assert ex.features.feature["image/sharp"].bytes_list.value[0] == png


def test_parse_subset_of_keys_and_in_dataset():
    rec = _record(2)
    ser = make_example(sharp=rec["sharp"], mask=rec["mask"], identity=7).SerializeToString()
    out = parse_example(ser, keys=("image/sharp", "identity"))
    assert set(out) == {"image/sharp", "identity"}
    np.testing.assert_array_equal(out["image/sharp"].numpy(), rec["sharp"])
    # graph mode inside tf.data
    ds = tf.data.Dataset.from_tensors(ser).map(lambda s: parse_example(s, keys=("mask/classes",)))
    m = next(iter(ds))["mask/classes"].numpy()
    np.testing.assert_array_equal(m[..., 0], rec["mask"])
    assert tfrecord.record_keys(ser) == {"image/sharp", "mask/classes", "identity"}
    # a key the record lacks fails; an unknown key name is rejected up front
    with pytest.raises(tf.errors.InvalidArgumentError, match="image/blurred"):
        parse_example(ser, keys=("image/blurred",))
    with pytest.raises(ValueError, match="unknown key"):
        parse_example(ser, keys=("sharp",))


def test_make_example_validation():
    rec = _record(3)
    with pytest.raises(ValueError, match="at least one image"):
        make_example(mask=rec["mask"])
    with pytest.raises(ValueError, match="0..3"):
        make_example(sharp=rec["sharp"], mask=rec["mask"] + 1)
    with pytest.raises(ValueError, match="height and width"):
        make_example(sharp=rec["sharp"], blurred=rec["blurred"][:-1])
    with pytest.raises(ValueError, match=r"\[P,2\]"):
        make_example(sharp=rec["sharp"], landmarks=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="square"):
        make_example(sharp=rec["sharp"], kernel=np.zeros((3, 5)))


def test_shard_name():
    assert tfrecord.shard_name("train", 0, 8) == "train-00000-of-00008.tfrecord"
    assert tfrecord.shard_name("celeba_val", 11, 12) == "celeba_val-00011-of-00012.tfrecord"
    with pytest.raises(ValueError):
        tfrecord.shard_name("train", 8, 8)


def test_sharded_writer_round_robin_round_trip(tmp_path):
    recs = [_record(i, h=24, w=24) for i in range(7)]
    with ShardedWriter(tmp_path / "out", "train", num_shards=3) as w:
        for r in recs:
            w.write(make_example(**r))
        # while open, only tmp files exist
        assert sorted(os.listdir(tmp_path / "out")) == [
            tfrecord.shard_name("train", i, 3) + ".tmp" for i in range(3)]
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert w.counts == [3, 2, 2] and w.num_written == 7
    assert [tfrecord.count_records(p) for p in w.paths] == [3, 2, 2]
    assert tfrecord.count_records(str(tmp_path / "out" / "train-*")) == 7
    # round-robin: shard 1 holds records 1 and 4, in order
    got = [parse_example(s, keys=("source", "image/sharp"))
           for s in tf.data.TFRecordDataset(w.paths[1])]
    assert [g["source"].numpy().decode() for g in got] == [recs[1]["source"], recs[4]["source"]]
    np.testing.assert_array_equal(got[1]["image/sharp"].numpy(), recs[4]["sharp"])


def test_sharded_writer_is_atomic_on_exception(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with ShardedWriter(out, "train", num_shards=4) as w:
            w.write(make_example(**_record(0, 16, 16)))
            w.write(make_example(**_record(1, 16, 16)))
            raise RuntimeError("boom")
    assert os.listdir(out) == []  # no final-named shard and no tmp left behind
    # a previous good shard set survives a failed rewrite untouched
    with ShardedWriter(out, "train", num_shards=1) as w:
        w.write(make_example(**_record(5, 16, 16)))
    before = (out / tfrecord.shard_name("train", 0, 1)).read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with ShardedWriter(out, "train", num_shards=1) as w:
            w.write(make_example(**_record(6, 16, 16)))
            raise KeyboardInterrupt
    assert (out / tfrecord.shard_name("train", 0, 1)).read_bytes() == before
    assert os.listdir(out) == [tfrecord.shard_name("train", 0, 1)]


def test_list_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        tfrecord.list_files(str(tmp_path / "nothing-here-*.tfrecord"))
    with pytest.raises(ValueError, match="folder"):
        tfrecord.list_files(str(tmp_path))
    (tmp_path / "a-00000-of-00001.tfrecord").write_bytes(b"")
    (tmp_path / "b-00000-of-00001.tfrecord").write_bytes(b"")
    (tmp_path / "b-00000-of-00001.tfrecord.tmp").write_bytes(b"")
    both = tfrecord.list_files(f"{tmp_path}/a-*,{tmp_path}/b-*")
    assert [os.path.basename(f) for f in both] == ["a-00000-of-00001.tfrecord",
                                                    "b-00000-of-00001.tfrecord"]
    assert tfrecord.list_files([str(tmp_path / "*.tfrecord*")]) == both  # tmp files never listed


def test_write_shard_is_atomic_and_counts(tmp_path):
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    path = str(tmp_path / tfrecord.shard_name("train", 0, 2))
    assert tfrecord.write_shard(path, [tfrecord.make_example(sharp=img)] * 3) == 3
    assert tfrecord.count_records(path) == 3
    before = open(path, "rb").read()

    def failing():
        yield tfrecord.make_example(sharp=img)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        tfrecord.write_shard(path, failing())
    assert open(path, "rb").read() == before      # the finished shard is untouched
    assert not os.path.exists(path + ".tmp")       # and no half shard is left behind
