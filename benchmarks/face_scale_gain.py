"""PSNR gain of the default `deblur` path (`common.photo.deblur_photo`, MTCNN) at 1x, 2x, 4x.

    python benchmarks/face_scale_gain.py N PACKAGE/NAME[,PACKAGE/NAME...] [TEST_SET]

N faces of the strong-blur test set (default /tmp/p32_strong: `python -m data.build
--flagfile=data/configs/lfw_strong_blur_test.flags --manual_dir=../shared/data/lfw
--output_dir=DIR`), enlarged with their kernels (`common.evaluation.scaled`); prints the mean
PSNR of the blurred input and of both restore modes, and their gains. `common.compare --scale=N
--method=photo:shipped:PACKAGE/NAME` scores the same path with every metric.
"""
import sys, numpy as np
from common.evaluation import stored_sets, scaled, methods
from common import photo, metrics, image_io
from common.face import get_detector
n = int(sys.argv[1]); specs = sys.argv[2].split(",")
ts0 = stored_sets.load_test_set(sys.argv[3] if len(sys.argv) > 3 else "/tmp/p32_strong", n)
det = get_detector("mtcnn")
for spec in specs:
    m = methods.resolve_method("shipped:" + spec, "m")
    sc = photo.read_face_scale(methods.shipped_path(spec))
    for f in (1, 2, 4):
        ts = scaled.scale_test_set(ts0, f)
        res = {}
        for mode in ("blur", "correction", "resample"):
            ps = []
            for s in ts.samples:
                if mode == "blur":
                    out = s.blurred
                else:
                    out = photo.deblur_photo(m.fn, s.blurred, det, stride=m.stride, scale=sc, restore=mode)[0]
                ps.append(metrics.psnr(image_io.to_float32(out), image_io.to_float32(s.sharp)))
            res[mode] = float(np.mean(ps))
        print(spec, f, {k: round(v, 2) for k, v in res.items()}, {k: round(v - res["blur"], 2) for k, v in res.items()}, flush=True)
