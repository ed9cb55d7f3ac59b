r"""The README's opening figure: real blurry photos and strong-blur test faces, each method's output.

    python -m common.showcase --test_set=/tmp/lfw_strong_blur \
        --method=UMSN=shipped:paper3_umsn/umsn_small --output=docs/figure.png

Rows: `--num_real` real blurry photos (no ground truth, `--real_dir`) then `--num_faces` faces of
a stored-blur test set (`common.evaluation.stored_sets`; the strong-blur set of
data/configs/lfw_strong_blur_test.flags in the README). Columns: blurred | each `--method`
(`common.evaluation.methods` specs: shipped weights, workdirs, .keras files, baselines) | sharp
(blank for real photos). Real photos are deblurred whole, then resized to the row height; test
faces are shown at their size. PSNR against the sharp face is printed per test face.
"""
import os

from absl import app, flags
import numpy as np

from common import image_io, inference, metrics
from common.evaluation import methods as methods_lib
from common.evaluation import stored_sets


def define_flags(fv=flags.FLAGS):
    d = dict(flag_values=fv)
    flags.DEFINE_string("test_set", None, "Stored-blur test set (folder layout or records).", **d)
    flags.DEFINE_integer("num_faces", 4, "Test faces (rows), the first ones by name.", **d)
    flags.DEFINE_string("real_dir", os.path.join(methods_lib.REPO_ROOT, "data", "sample",
                                                 "real_blurry"),
                        "Folder of real blurry photos (no ground truth).", **d)
    flags.DEFINE_integer("num_real", 3, "Real photos (rows), the first ones by name.", **d)
    flags.DEFINE_multi_string("method", [], "NAME=SPEC, repeatable (common.compare's specs).",
                              **d)
    flags.DEFINE_integer("height", 128, "Row height in pixels.", **d)
    flags.DEFINE_string("output", None, "PNG to write.", **d)
    flags.mark_flags_as_required(["test_set", "output"], flag_values=fv)


def figure(test_set, method_specs, real_dir=None, num_faces=4, num_real=3, height=128,
           log=print):
    """(sheet uint8 [H,W,3], labels, rows of {method: PSNR}) for the README figure."""
    methods = [methods_lib.resolve_method(spec) for spec in method_specs]
    if not methods:
        raise ValueError("give at least one --method=NAME=SPEC")
    ts = stored_sets.load_test_set(test_set, num_images=num_faces)
    if not ts.samples or ts.samples[0].sharp is None:
        raise ValueError(f"--test_set={test_set}: needs sharp ground truth (folder layout with "
                         "sharp/ and blurred/, or records with image/sharp and image/blurred)")
    rows, scores = [], []
    reals = image_io.list_images(real_dir)[:num_real] if real_dir and num_real else []
    for path in reals:
        y = image_io.read_image(path)
        row = [y] + [image_io.to_uint8(inference.deblur_image(m, y, stride=m.stride))
                     for m in methods]
        rows.append([_to_height(im, height) for im in row] + [np.full((height, 4, 3), 40, np.uint8)])
    for s in ts.samples:
        outs = [image_io.to_uint8(inference.deblur_image(m, s.blurred, stride=m.stride))
                for m in methods]
        sharp = image_io.to_float32(s.sharp)
        psnr = {"blurred": float(metrics.psnr(image_io.to_float32(s.blurred), sharp))}
        psnr.update({m.name: float(metrics.psnr(image_io.to_float32(o), sharp))
                     for m, o in zip(methods, outs)})
        scores.append(psnr)
        log(f"{s.name}: " + ", ".join(f"{k} {v:.2f} dB" for k, v in psnr.items()))
        rows.append([_to_height(im, height) for im in [s.blurred, *outs, s.sharp]])
    labels = ["blurred"] + [m.name for m in methods] + ["sharp"]
    return image_io.contact_sheet(rows, labels=labels), labels, scores


def _to_height(img, height):
    img = image_io.to_uint8(img)
    if img.shape[0] == height:
        return img
    from PIL import Image  # pylint: disable=import-outside-toplevel
    w = max(1, round(img.shape[1] * height / img.shape[0]))
    return np.asarray(Image.fromarray(img).resize((w, height), Image.BICUBIC))


def main(argv):
    del argv
    fv = flags.FLAGS
    try:
        sheet, _, _ = figure(fv.test_set, fv.method, fv.real_dir, fv.num_faces, fv.num_real,
                             fv.height)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e)) from e
    image_io.write_image(fv.output, sheet)
    print(fv.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
