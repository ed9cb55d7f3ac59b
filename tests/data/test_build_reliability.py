"""Issue 16 probes on data.build: a rerun with other flags or sources never keeps stale shards,
a killed build is never read as a whole one, the report's temporary file follows no link."""
import glob
import json
import os

from absl import flags
import numpy as np
import pytest

from common import pipeline, tfrecord
from data import build
from tests.data import fixtures


def _run(argv):
    fv = flags.FlagValues()
    build.define_flags(fv)
    fv(["build"] + argv)
    return build.build(build.config_from_flags(fv))


@pytest.fixture
def grey_folder(tmp_path):
    src = str(tmp_path / "src")
    for i in range(6):
        fixtures.save(os.path.join(src, f"{i}.png"), np.full((40, 40, 3), 128, np.uint8))
    return src


def _args(src, out, *extra):
    return ["--source=folder", f"--manual_dir={src}", f"--output_dir={out}", "--name=t",
            "--num_shards=3", "--blur_kernels=gaussian", "--kernel_sizes=3", *extra]


def _noise_std(out):
    ds = pipeline.make_dataset(os.path.join(out, "t-*.tfrecord"), 6, training=False,
                               keys=("blurred",))
    blurred = next(iter(ds))["blurred"].numpy().astype(np.float64)
    return float((blurred - 128 / 255).std())


def test_rerun_with_other_flags_or_sources_is_refused_or_rebuilt(grey_folder, tmp_path):
    out = str(tmp_path / "rec")
    _run(_args(grey_folder, out, "--noise_sigma=0.03"))
    assert abs(_noise_std(out) - 0.03) < 0.005
    manifest = json.load(open(os.path.join(out, "t-build.json")))
    assert manifest["shards"] == [tfrecord.shard_name("t", i, 3) for i in range(3)]
    assert _run(_args(grey_folder, out, "--noise_sigma=0.03"))["items_resumed"] == 6  # same: resume
    # other flags: refused, naming the flag (it "resumed" all items and kept sigma 0.03)
    with pytest.raises(ValueError, match=r"--noise_sigma: 0\.03 then, 0\.3 now.*--overwrite"):
        _run(_args(grey_folder, out, "--noise_sigma=0.3"))
    assert abs(_noise_std(out) - 0.03) < 0.005  # nothing touched
    rep = _run(_args(grey_folder, out, "--noise_sigma=0.3", "--overwrite"))
    assert rep["items_this_run"] == 6 and rep["items_resumed"] == 0
    assert _noise_std(out) > 0.2  # rebuilt with the new noise (0.3, clipped at 0 and 1)
    # a changed source file: refused too
    fixtures.save(os.path.join(grey_folder, "0.png"), np.full((40, 40, 3), 100, np.uint8))
    os.utime(os.path.join(grey_folder, "0.png"), ns=(1, 1))
    with pytest.raises(ValueError, match="source files changed"):
        _run(_args(grey_folder, out, "--noise_sigma=0.3"))
    # shards without a build.json (an older build): refused
    os.remove(os.path.join(out, "t-build.json"))
    with pytest.raises(ValueError, match="no t-build.json"):
        _run(_args(grey_folder, out, "--noise_sigma=0.3"))


def test_reading_a_killed_build_is_refused(grey_folder, tmp_path, monkeypatch):
    out = str(tmp_path / "rec")
    real = build.item_examples

    def killed_at_item_2(cfg, index, *a, **k):
        if index == 2:
            raise KeyboardInterrupt("simulated kill")
        return real(cfg, index, *a, **k)
    monkeypatch.setattr(build, "item_examples", killed_at_item_2)
    with pytest.raises(KeyboardInterrupt):
        _run(_args(grey_folder, out))
    assert len(glob.glob(os.path.join(out, "t-*.tfrecord"))) == 1
    with pytest.raises(ValueError, match=r"1 of the 3 shards .*missing t-00001-of-00003.tfrecord, "
                                         r"t-00002-of-00003.tfrecord.*rerun the same"):
        pipeline.make_dataset(os.path.join(out, "*.tfrecord"), 2, training=False, keys=("sharp",))
    # naming the shard itself reads it on purpose
    one = os.path.join(out, tfrecord.shard_name("t", 0, 3))
    assert tfrecord.list_files(one) == [one]
    monkeypatch.setattr(build, "item_examples", real)
    _run(_args(grey_folder, out))  # finishing the build makes the glob readable
    assert tfrecord.count_records(os.path.join(out, "*.tfrecord")) == 6


def test_report_temp_file_follows_no_planted_link(grey_folder, tmp_path):
    out = tmp_path / "rec"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, out / "t-report.json.tmp")
    old = os.umask(0o022)
    try:
        _run(_args(grey_folder, str(out)))
    finally:
        os.umask(old)
    assert victim.read_text() == "keep me"
    report = out / "t-report.json"
    assert not report.is_symlink() and json.load(open(report))["records"] == 6
    assert os.stat(report).st_mode & 0o777 == 0o644
