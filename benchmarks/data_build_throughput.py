"""Throughput of `python -m data.build` (images/s) and record size per image; prints JSON.

    python benchmarks/data_build_throughput.py [--manual_dir=../shared/data/celeba_small]
        [--source=celeba] [--split=test] [--num=300] [--blur_kernels=camera_shake]

Builds `--num` items into a temporary folder (deleted afterwards) and reports items/s of the
build (reading, blurring, PNG encoding, writing) and the bytes per record, then the read speed
of those records through `common.pipeline.make_dataset` (decode, no crop).
"""
import json
import os
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data import build  # noqa: E402  pylint: disable=g-import-not-at-top
from common.paths import SHARED_DATA

FLAGS = flags.FLAGS


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as out:
    cfg_flags = ["build", f"--source={FLAGS.source}", f"--manual_dir={FLAGS.manual_dir}",
                 f"--split={FLAGS.split}", f"--output_dir={out}", f"--max_items={FLAGS.num}",
                 f"--blur_kernels={FLAGS.blur_kernels}", "--num_shards=2", f"--mode={FLAGS.mode}"]
    fv = flags.FlagValues()
    build.define_flags(fv)
    fv(cfg_flags)
    t = time.time()
    rep = build.build(build.config_from_flags(fv))
    build_s = time.time() - t
    from common import pipeline  # pylint: disable=g-import-not-at-top
    ds = pipeline.make_dataset(os.path.join(out, f"{FLAGS.split}-*.tfrecord"), batch_size=1,
                               training=False)
    t = time.time()
    n = sum(1 for _ in ds)
    read_s = time.time() - t
  print(json.dumps({
      "source": FLAGS.source, "split": FLAGS.split, "mode": FLAGS.mode, "kernels": FLAGS.blur_kernels,
      "items": rep["items"], "records": rep["records"],
      "build_items_per_s": round(rep["items"] / build_s, 1),
      "bytes_per_record": round(rep["bytes"] / max(rep["records"], 1)),
      "total_mb": round(rep["bytes"] / 1e6, 2),
      "read_records_per_s": round(n / read_s, 1),
  }))


if __name__ == "__main__":
  flags.DEFINE_string("source", "celeba", "data.build source.")
  flags.DEFINE_string("manual_dir", os.path.join(SHARED_DATA, "celeba_small"), "Dataset root.")
  flags.DEFINE_string("split", "test", "Source split.")
  flags.DEFINE_string("mode", "kernel", "data.build mode.")
  flags.DEFINE_string("blur_kernels", "camera_shake", "Kernel spec (data.build --blur_kernels).")
  flags.DEFINE_integer("num", 300, "Items to build.")
  app.run(main)
