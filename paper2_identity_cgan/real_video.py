r"""Sec. 5.6 (real-world blurry video, Fig. 18): identity cosine along a real blurry face sequence.

The paper: 160 blurry frames of a real video, no ground truth; one sharp frame of the video is
selected and its FaceNet embedding is the identity reference; every method deblurs every frame
and the cosine of each frame's embedding to the reference is plotted as a distribution (the
narrower and closer to 1, the better the identity is kept). Here:

* a sequence is a folder of frames (natural name order) or a folder holding ``frames/``; a
  ``blurred.png`` beside ``frames/`` (``../shared/data/face_video_toy``: a real 7-frame average)
  is one more blurry frame (``--with_blurred_png``);
* the reference is the sharpest frame (``--reference=auto``: largest variance of the Laplacian of
  the grey frame, a standard focus measure; the paper picked one by eye) or a frame index; it is
  left out of the scored frames (its own embedding would score 1 by construction);
* embeddings: ``common.face`` (dlib ResNet by default, not FaceNet), in the face box found on the
  reference frame (one box for the whole sequence: the faces here barely move);
* rows: ``blurred`` (the frames as they are) and every ``--method=NAME=SPEC`` (``python -m
  common.compare`` specs: ``shipped:paper2_identity_cgan/cgan_small``, a workdir, ...).

    python -m paper2_identity_cgan.real_video --video='../shared/data/face_video_toy/*' \
        --method=cgan=shipped:paper2_identity_cgan/cgan_small --size=128 --out_dir=/tmp/p2/real

Writes ``OUT/real_video.json`` (per frame and per row: cosines; per row: mean, std, median, min
over all scored frames; the ranking by mean) and ``OUT/real_video_cosine.png`` (Fig. 18's plot).
"""
from __future__ import annotations

import glob
import json
import os

from absl import flags
import numpy as np

from common import cli, face, image_io
from common.evaluation import methods as methods_lib
from common.evaluation import runner
from paper2_identity_cgan import data as p2data


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_multi_string("video", [], "Frame folder(s) or glob(s) of them (a folder holding "
                              "frames/ counts as its frames/).", **d)
    flags.DEFINE_multi_string("method", [], "NAME=SPEC rows (python -m common.compare specs, "
                              "e.g. cgan=shipped:paper2_identity_cgan/cgan_small).", **d)
    flags.DEFINE_string("reference", "auto", "auto (sharpest frame) or the frame index of the "
                        "identity reference.", **d)
    flags.DEFINE_bool("with_blurred_png", True, "Score a blurred.png beside frames/ too.", **d)
    flags.DEFINE_integer("size", 0, "Centre-square-crop and resize frames to N (0: as stored).", **d)
    flags.DEFINE_string("identity_model", "dlib_resnet", "common.face identity model.", **d)
    flags.DEFINE_string("detector", "dlib", "common.face detector of the face box (on the "
                        "reference frame).", **d)
    flags.DEFINE_string("out_dir", None, "Where real_video.json and the plot go.", **d)
    flags.DEFINE_bool("plot", True, "Write real_video_cosine.png.", **d)


def sharpness(image) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image (higher = sharper)."""
    g = np.asarray(image_io.to_float32(image), np.float64).mean(axis=-1)
    lap = (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1])
    return float(lap.var())


def read_sequence(folder, size=0, with_blurred_png=True):
    """(names [T], uint8 [T,H,W,3]) of one sequence: its frames, then blurred.png if present."""
    frames_dir = os.path.join(folder, "frames") if os.path.isdir(os.path.join(folder, "frames")) \
        else folder
    paths = image_io.list_images(frames_dir, recursive=False)
    extra = os.path.join(folder, "blurred.png")
    if with_blurred_png and frames_dir != folder and os.path.isfile(extra):
        paths.append(extra)
    if not paths:
        raise FileNotFoundError(f"--video={folder}: no frame image in {frames_dir}")
    imgs = [image_io.read_image(p) for p in paths]
    if len({im.shape for im in imgs}) != 1:
        raise ValueError(f"--video={folder}: frames differ in size "
                         f"({sorted({im.shape for im in imgs})})")
    seq = np.stack(imgs)
    if size:
        seq = p2data.resize_sequence(seq, size)
    return [os.path.relpath(p, folder) for p in paths], seq


def score_sequence(frames, rows, tools, reference="auto", names=None, key="seq"):
    """Sec. 5.6 on one sequence. frames: uint8/float [T,H,W,3]; rows: {name: fn float [N,H,W,3]
    -> [N,H,W,3]} ("blurred" is added: the frames themselves). Returns dict(reference index,
    reference_sharpness, frames (scored names), cosine {row: [T-1]})."""
    x = image_io.to_float32(np.asarray(frames))
    names = list(names) if names is not None else [str(i) for i in range(len(x))]
    if len(x) < 2:
        raise ValueError(f"{key}: a sequence needs at least 2 frames (a reference and one scored)")
    sharp = [sharpness(f) for f in x]
    ref = int(np.argmax(sharp)) if reference == "auto" else int(reference)
    if not 0 <= ref < len(x):
        raise ValueError(f"{key}: --reference={reference} is outside its {len(x)} frames")
    box = tools.box((key, "reference"), x[ref])
    ref_emb = tools.embed(x[ref], box)
    scored = [i for i in range(len(x)) if i != ref]
    blurry = x[scored]
    outs = {"blurred": blurry}
    outs.update({name: fn(blurry) for name, fn in rows.items()})
    cos = {}
    for name, imgs in outs.items():
        emb = tools.embed_many(imgs, [box] * len(imgs))
        cos[name] = face.identity_similarity(emb, np.repeat(ref_emb[None], len(emb), 0))[
            "cosine"].tolist()
    return dict(reference=ref, reference_name=names[ref], reference_sharpness=sharp[ref],
                frames=[names[i] for i in scored], cosine=cos)


def summarize(per_sequence):
    """{row: {mean, std, median, min, n}} over every scored frame of every sequence, and the
    rows ranked by mean cosine (best first)."""
    pooled = {}
    for r in per_sequence.values():
        for name, c in r["cosine"].items():
            pooled.setdefault(name, []).extend(c)
    summary = {name: {"mean": float(np.mean(c)), "std": float(np.std(c)),
                      "median": float(np.median(c)), "min": float(np.min(c)), "n": len(c)}
               for name, c in pooled.items()}
    ranking = sorted(summary, key=lambda n: -summary[n]["mean"])
    return summary, ranking, pooled


def find_videos(specs):
    out = []
    for spec in specs:
        hits = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
        hits = [h for h in hits if os.path.isdir(h)]
        if not hits:
            raise FileNotFoundError(f"--video={spec!r} names no folder")
        out += hits
    return out


def run(cfg) -> dict:
    """Sec. 5.6 from the parsed flags; returns (and writes) the JSON dict."""
    if not cfg.video:
        raise ValueError("--video=FOLDER is required (a real blurry frame sequence)")
    from common.face import FaceModels  # pylint: disable=import-outside-toplevel
    tools = FaceModels(identity_model=cfg.identity_model, landmarker="", detector="",
                       box_detector=cfg.detector or "dlib")
    rows = {}
    for spec in cfg.method:
        name, s = methods_lib.parse_method_flag(spec)
        m = methods_lib.resolve_method(s, name)
        rows[m.name] = lambda x, m=m: runner.restore_images(m, x)
    per_seq = {}
    for folder in find_videos(cfg.video):
        names, seq = read_sequence(folder, cfg.size, cfg.with_blurred_png)
        per_seq[folder] = score_sequence(seq, rows, tools, cfg.reference, names, key=folder)
    summary, ranking, pooled = summarize(per_seq)
    result = {"protocol": "paper 2 Sec. 5.6: identity cosine to a sharp reference frame",
              "identity_model": cfg.identity_model, "size": cfg.size, "methods": cfg.method,
              "sequences": per_seq, "summary": summary, "ranking": ranking}
    for name in ranking:
        s = summary[name]
        print(f"{name:>24s}: cosine mean {s['mean']:.4f} ± {s['std']:.4f}, median "
              f"{s['median']:.4f}, min {s['min']:.4f} ({s['n']} frames)")
    if cfg.out_dir:
        os.makedirs(cfg.out_dir, exist_ok=True)
        with open(os.path.join(cfg.out_dir, "real_video.json"), "w") as f:
            json.dump(result, f, indent=1)
        if cfg.plot:
            face.plot_similarity({n: np.asarray(pooled[n]) for n in ranking},
                                 os.path.join(cfg.out_dir, "real_video_cosine.png"),
                                 title="Sec. 5.6: cosine to the sharp reference frame")
    return result


def main(argv):
    del argv
    try:
        run(flags.FLAGS)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
