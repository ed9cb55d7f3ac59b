"""Evaluation of Chrysos et al. (Sec. 5.2-5.5): Tables 4-8, CED and cosine-similarity plots.

Test protocols (Sec. 5.2), on held-out faces (``--test_stills``, turned into 21-frame videos by
``data.synth_video`` whose middle frame IS the still) and optional real frame folders
(``--test_videos``):

* ``synthetic``: the still convolved with a Markov-trajectory kernel (Kupyn et al.);
* ``pravg<L>``: L in {7, 9, 11, 15, 21} frames averaged around the middle frame;
* ``vla``: variable length averaging around the middle frame (``common.frame_averaging.vla_average``).

Rows: every row of the paper's Tables 5-8 (the ten compared methods with the paper's numbers:
we cannot run them here), measured ``--compare=NAME=SPEC`` rows (classical baselines, the other
papers' models; specs of ``python -m common.compare --method``), each trained model
(``--workdirs=name=WORKDIR,...``; the first is "ours" = 'final'), "blurred" (the input itself)
and "oracle" (the sharp image).  Metrics: PSNR/SSIM
(``common.metrics``), 68-point landmark AUC@0.08 and failure rate (``common.face
.landmark_protocol`` with the ``common.face`` landmarker).  No test set here has landmark
ground truth, so the landmarks found on the sharp image are the ground truth: the oracle row is
AUC 1 / failure 0 *by construction* (the paper's oracle used 300VW annotations).  Table 8
(Sec. 5.5): YouTube Faces verification over the official splits (``--ytf_dir``, `ytf_verification`:
every video of a pair cut into PrAvg 7 / 11 windows, each window deblurred and embedded, a video =
the mean of its windows' embeddings, per-split accuracy with the threshold chosen on the other nine
splits, mean ± std); without ``--ytf_dir`` the fallback is LFW verification
(``common.face.lfw_verification``) on PrAvg 7 and 11 of every pair image, labelled as such.

    python -m paper2_identity_cgan.evaluate --workdirs=final=/tmp/p2/cgan \
        --test_stills=data/sample/test_faces --out_dir=/tmp/p2/eval
"""
from __future__ import annotations

import json
import os
import zlib

from absl import app, flags, logging
import numpy as np

from common import blur, cli, face, frame_averaging, image_io, inference, metrics, report
from common.evaluation import methods as methods_lib
from common.evaluation import runner
from common.report import Table
from paper2_identity_cgan import data as p2data
from paper2_identity_cgan import export, models

PRAVG_LENGTHS = (7, 9, 11, 15, 21)
PROTOCOLS = tuple(f"pravg{L}" for L in PRAVG_LENGTHS) + ("vla", "synthetic")

# The paper's numbers: (AUC, failure rate %, SSIM) per protocol for "ours", "blurred", "oracle".
PAPER = {
    "pravg7": {"ours": (0.798, 3.947, 0.94501), "blurred": (0.743, 8.876, 0.94078),
               "oracle": (0.827, 1.816, None)},
    "pravg9": {"ours": (0.788, 4.525, 0.93854), "blurred": (0.747, 6.680, 0.92705),
               "oracle": (0.829, 1.605, None)},
    "pravg11": {"ours": (0.781, 5.018, 0.93221), "blurred": (0.739, 7.043, 0.92905),
                "oracle": (0.829, 1.612, None)},
    "pravg15": {"ours": (0.769, 5.482, 0.91316), "blurred": (0.721, 7.667, 0.91745),
                "oracle": (0.832, 1.276, None)},
    "pravg21": {"ours": (0.748, 6.751, 0.90257), "blurred": (0.695, 9.270, 0.90388),
                "oracle": (0.833, 1.411, None)},
    "vla": {"ours": (0.786, 3.118, 0.9075), "blurred": (0.725, 5.866, 0.90223),
            "oracle": (0.827, 1.568, None)},
    "synthetic": {"ours": (0.764, 2.672, 0.87141), "blurred": (0.697, 4.656, 0.85225),
                  "oracle": (0.830, 1.425, None)},
}
PAPER_COMPARISON = {  # Tables 5-7: (AUC, failure rate %, SSIM) of the ten compared methods
    "Krishnan et al (2011)": {"pravg7": (0.706, 11.013, 0.7857), "pravg9": (0.734, 5.801, 0.78183),
                              "pravg11": (0.728, 6.294, 0.7909), "pravg15": (0.719, 6.717, 0.78849),
                              "pravg21": (0.707, 7.094, 0.78858), "vla": (0.731, 4.192, 0.78706),
                              "synthetic": (0.736, 2.774, 0.7672)},
    "Babacan et al (2012)": {"pravg7": (0.73, 9.95, 0.92877), "pravg9": (0.735, 7.796, 0.91614),
                             "pravg11": (0.728, 7.993, 0.91913), "pravg15": (0.71, 8.807, 0.90831),
                             "pravg21": (0.684, 10.641, 0.89621), "vla": (0.715, 6.817, 0.89318),
                             "synthetic": (0.686, 5.344, 0.83956)},
    "Zhang et al (2013)": {"pravg7": (0.692, 11.276, 0.79779), "pravg9": (0.713, 6.956, 0.79298),
                           "pravg11": (0.711, 7.129, 0.80369), "pravg15": (0.705, 7.165, 0.80162),
                           "pravg21": (0.689, 8.122, 0.79893), "vla": (0.721, 4.879, 0.8018),
                           "synthetic": (0.73, 2.85, 0.77321)},
    "Xu et al (2013)": {"pravg7": (0.451, 42.377, 0.86214), "pravg9": (0.348, 55.125, 0.85477),
                        "pravg11": (0.451, 41.528, 0.85988), "pravg15": (0.446, 41.552, 0.85767),
                        "pravg21": (0.438, 41.435, 0.85059), "vla": (0.39, 48.459, 0.84882),
                        "synthetic": (0.437, 36.845, 0.76055)},
    "Pan et al (2014b)": {"pravg7": (0.709, 7.527, 0.74978), "pravg9": (0.699, 8.194, 0.74378),
                          "pravg11": (0.692, 8.434, 0.75232), "pravg15": (0.681, 8.536, 0.74793),
                          "pravg21": (0.665, 9.17, 0.74447), "vla": (0.692, 6.852, 0.75602),
                          "synthetic": (0.715, 3.486, 0.74478)},
    "Pan et al (2014a)": {"pravg7": (0.745, 5.255, 0.80171), "pravg9": (0.734, 6.077, 0.80548),
                          "pravg11": (0.727, 6.304, 0.79982), "pravg15": (0.716, 6.609, 0.79162),
                          "pravg21": (0.694, 7.96, 0.78256), "vla": (0.727, 4.28, 0.78333),
                          "synthetic": (0.718, 3.639, 0.72402)},
    "Pan et al (2016)": {"pravg7": (0.768, 4.502, 0.86626), "pravg9": (0.756, 4.968, 0.85379),
                         "pravg11": (0.749, 5.44, 0.86143), "pravg15": (0.735, 5.808, 0.85166),
                         "pravg21": (0.714, 6.59, 0.8409), "vla": (0.745, 3.734, 0.84249),
                         "synthetic": (0.727, 2.723, 0.77778)},
    "Chakrabarti (2016)": {"pravg7": (0.504, 37.08, 0.88817), "pravg9": (0.48, 39.708, 0.88462),
                           "pravg11": (0.466, 41.403, 0.88281), "pravg15": (0.437, 44.375, 0.87871),
                           "pravg21": (0.405, 48.065, 0.87234), "vla": (0.41, 45.006, 0.84582),
                           "synthetic": (0.475, 34.631, 0.84699)},
    "Nah et al (2017)": {"pravg7": (0.792, 3.235, 0.94294), "pravg9": (0.779, 3.837, 0.93318),
                         "pravg11": (0.771, 4.471, 0.92504), "pravg15": (0.754, 5.225, 0.91227),
                         "pravg21": (0.73, 7.255, 0.89832), "vla": (0.767, 3.012, 0.90223),
                         "synthetic": (0.729, 2.774, 0.83791)},
    "Kupyn et al (2017)": {"pravg7": (0.766, 5.647, 0.88605), "pravg9": (0.749, 6.902, 0.8946),
                           "pravg11": (0.739, 7.503, 0.89004), "pravg15": (0.72, 8.386, 0.86222),
                           "pravg21": (0.694, 9.734, 0.85297), "vla": (0.728, 5.513, 0.85285),
                           "synthetic": (0.733, 4.58, 0.84477)},
}
PAPER_TABLE8_COMPARISON = {  # Table 8: ((mean, std) PrAvg 7, (mean, std) PrAvg 11)
    "Krishnan et al (2011)": ((0.7344, 0.0155), (0.7146, 0.0203)),
    "Babacan et al (2012)": ((0.8194, 0.0193), (0.8024, 0.0168)),
    "Zhang et al (2013)": ((0.7002, 0.0219), (0.6964, 0.015)),
    "Xu et al (2013)": ((0.5346, 0.0264), (0.5348, 0.0176)),
    "Pan et al (2014b)": ((0.6768, 0.0234), (0.6654, 0.0213)),
    "Pan et al (2014a)": ((0.7386, 0.0228), (0.719, 0.0145)),
    "Pan et al (2016)": ((0.7648, 0.0241), (0.7508, 0.0217)),
    "Chakrabarti (2016)": ((0.551, 0.0272), (0.541, 0.0206)),
    "Nah et al (2017)": ((0.8434, 0.0188), (0.8106, 0.0156)),
    "Kupyn et al (2017)": ((0.8244, 0.0161), (0.7942, 0.0163)),
}
PAPER_TABLE4 = {"identity-noHG-only2mf2": (0.751, 8.800, 0.92031),
                "identity-noHG": (0.759, 7.895, 0.88091),
                "no-identity": (0.783, 5.962, 0.92883), "final": (0.798, 3.947, 0.93501)}
PAPER_TABLE8 = {"ours": ((0.8482, 0.0179), (0.8212, 0.0087)),
                "blurred": ((0.8414, 0.0206), (0.8154, 0.0136)),
                "gt": ((0.9006, 0.0118), (0.9044, 0.0134))}


def define_flags(fv):
    d = dict(flag_values=fv)
    flags.DEFINE_list("workdirs", [], "name=WORKDIR of trained cGANs; the first is 'ours'. "
                      "Table 4 names: final, no-identity, identity-noHG.", **d)
    flags.DEFINE_string("test_stills", "data/sample/test_faces", "Held-out still faces.", **d)
    flags.DEFINE_integer("stills_limit", 0, "Use at most N stills (0: all).", **d)
    flags.DEFINE_string("test_videos", "", "Globs of real held-out frame folders.", **d)
    flags.DEFINE_list("protocols", list(PROTOCOLS), "Protocols to run.", **d)
    flags.DEFINE_integer("size", 0, "Evaluation image size (multiple of 128); 0: the first "
                         "workdir's training --crop_size (paper: 256).", **d)
    flags.DEFINE_string("out_dir", None, "Where tables, CSV, JSON and plots go.", **d)
    flags.DEFINE_string("landmarker", "dlib68", "common.face landmarker ('' to skip).", **d)
    flags.DEFINE_string("detector", "dlib", "common.face detector for the face box (on sharp).",
                        **d)
    flags.DEFINE_string("identity_model", "dlib_resnet", "common.face identity model for the "
                        "cosine plots and Table 8 ('' to skip).", **d)
    flags.DEFINE_string("ytf_dir", "", "YouTube Faces root (frame_images_DB/ + splits.txt) for "
                        "Table 8 on the paper's set; '' falls back to --lfw_dir.", **d)
    flags.DEFINE_integer("ytf_pairs_per_split", 0, "Same and different pairs per official split "
                         "(first in file order; 0: all 250 + 250).", **d)
    flags.DEFINE_integer("ytf_windows_per_video", 0, "PrAvg windows per video, evenly spaced over "
                         "its non-overlapping windows (0: every one; the paper does not say).", **d)
    flags.DEFINE_string("lfw_dir", "", "LFW root for Table 8's fallback ('' to skip).", **d)
    flags.DEFINE_string("lfw_pairs", "", "LFW pairs.txt for Table 8.", **d)
    flags.DEFINE_integer("pairs_per_fold", 10, "Same and different pairs per fold (0: all 300).",
                         **d)
    flags.DEFINE_bool("every_window", True, "Tables 5-7 over every frame window of every "
                      "--test_videos sequence (PrAvg: non-overlapping windows, the paper's "
                      "17,125 PrAvg-7 pairs on 300VW; VLA/synthetic: every frame), with their "
                      "300VW annot/*.pts as landmark ground truth; --test_stills videos always "
                      "give one (middle) window. false: one window per video too.", **d)
    flags.DEFINE_integer("window_stride", 0, "Frames between window centres (0: L for PrAvg "
                         "L, 1 for VLA/synthetic).", **d)
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic videos and kernels.", **d)
    flags.DEFINE_multi_string("compare", [], "Extra measured rows, NAME=SPEC as in `python -m "
                              "common.compare --method` (unsharp, the other papers' workdirs or "
                              ".keras files); the frame-averaged protocols store no kernel, so no "
                              "wiener/rl.", **d)


# ---------------------------------------------------------------------------- models ----
def load_model(workdir):
    """(flags, deblur_fn [B,H,W,3] -> [B,H,W,3]) rebuilt from ``workdir/flags.txt``
    (`export.load_deblurrer`)."""
    model, cfg = export.load_deblurrer(workdir)
    return cfg, inference.static_shape_fn(model)


def load_method(workdir):
    """A cGAN workdir as a `common.evaluation.Method` (for `common.compare`)."""
    cfg, fn = load_model(workdir)
    return methods_lib.Method(f"cGAN (paper 2, {cfg.variant})", fn, "paper2", workdir,
                              methods_lib.count_params(fn.model), models.GEN_DIVISOR,
                              description=f"paper2_identity_cgan workdir {workdir}")


# ------------------------------------------------------------------------------ data ----
def make_protocol_pairs(sequences, protocol, seed=0):
    """(blurred [N,H,W,3], sharp [N,H,W,3]) float32 for one protocol; ``sequences``: list of
    (name, uint8 [T,H,W,3]) with the ground truth at T // 2 (synthetic videos) or any T."""
    blurred, sharp = [], []
    for name, frames in sequences:
        c = len(frames) // 2
        if protocol.startswith("pravg"):
            L = int(protocol[5:])
            if L > len(frames):
                continue
            lo = min(max(c - L // 2, 0), len(frames) - L)
            b, s = frame_averaging.average_frames(frames[lo:lo + L])
        elif protocol == "vla":
            res = frame_averaging.vla_average(frames, c, max_length=21)
            b, s = res.blurred, res.sharp
        elif protocol == "synthetic":
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            k = blur.markov_kernel(int(rng.choice(range(13, 30, 2))), rng=rng)
            s = image_io.to_float32(frames[c])
            b = np.asarray(blur.apply_kernels(s[None], k[None]))[0]
        else:
            raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")
        blurred.append(np.clip(b, 0, 1))
        sharp.append(s)
    if not blurred:
        return None, None
    return np.stack(blurred).astype(np.float32), np.stack(sharp).astype(np.float32)


# The paper's test-set sizes beside ours (Sec. 5.3-5.4: 300VW's 64 test videos, ~120,000 frames;
# PrAvg 7 over non-overlapping windows gives 17,125 pairs; the other protocols' counts are not stated).
PAPER_TEST_PAIRS = {"pravg7": "17,125 pairs (64 300VW test videos)"}
PAPER_TEST_FRAMES = "64 300VW test videos, ~120,000 frames"


def window_centres(num_frames, protocol, stride=0):
    """Middle-frame indices of every window of `protocol` in a sequence of num_frames frames.
    pravg<L>: windows of L frames tiled without overlap (stride 0 = L, the paper's count: 120,000
    frames / 7 = 17,125 PrAvg-7 pairs) or every `stride` frames; vla / synthetic: every frame
    (stride 0 = 1)."""
    if protocol.startswith("pravg") and protocol[5:].isdigit():
        L = int(protocol[5:])
        return list(range(L // 2, num_frames - L // 2, stride or L))
    if protocol in ("vla", "synthetic"):
        return list(range(0, num_frames, stride or 1))
    raise ValueError(f"unknown protocol {protocol!r}; choose from {PROTOCOLS}")


def _middle_centre(num_frames, protocol):
    """The one window `make_protocol_pairs` takes: around the middle frame ([] if too short)."""
    c = num_frames // 2
    if protocol.startswith("pravg") and protocol[5:].isdigit():
        L = int(protocol[5:])
        return [] if L > num_frames else [min(max(c - L // 2, 0), num_frames - L) + L // 2]
    return [c]


def make_window_pairs(sequences, protocol, seed=0, stride=0, landmarks=None, only=None):
    """Every frame window of every sequence (`window_centres`), not one per sequence.
    sequences: (name, uint8 [T,H,W,3]); landmarks: {name: float [T,68,2] (x, y) in the frames'
    pixels} (300VW annot/*.pts, `sequence_landmarks`) or None. only: names of the sequences to
    window (None: all); the others give their one middle window (e.g. the synthetic videos of
    still faces, whose middle frame IS the still). Returns dict blurred, sharp float32
    [N,H,W,3], names [N] ('seq#centre'), gt [N,68,2] (NaN where a sequence has no annotations)."""
    blurred, sharp, names, gts = [], [], [], []
    for name, frames in sequences:
        lms = (landmarks or {}).get(name)
        every = only is None or name in only
        centres = window_centres(len(frames), protocol, stride) if every else \
            _middle_centre(len(frames), protocol)
        for c in centres:
            if protocol.startswith("pravg"):
                L = int(protocol[5:])
                b, s = frame_averaging.average_frames(frames[c - L // 2:c + L // 2 + 1])
            elif protocol == "vla":
                res = frame_averaging.vla_average(frames, c, max_length=21)
                b, s = res.blurred, res.sharp
            else:
                rng = np.random.default_rng([seed, zlib.crc32(name.encode()), c])
                k = blur.markov_kernel(int(rng.choice(range(13, 30, 2))), rng=rng)
                s = image_io.to_float32(frames[c])
                b = np.asarray(blur.apply_kernels(s[None], k[None]))[0]
            blurred.append(np.clip(b, 0, 1))
            sharp.append(s)
            names.append(f"{name}#{c}")
            gts.append(np.asarray(lms[c], np.float64) if lms is not None else np.full((68, 2), np.nan))
    if not blurred:
        return None
    return dict(blurred=np.stack(blurred).astype(np.float32), sharp=np.stack(sharp).astype(np.float32),
                names=names, gt=np.stack(gts))


def sequence_landmarks(folder, size):
    """float64 [T,68,2] 300VW landmarks (annot/<frame stem>.pts beside frames/) of a frame
    folder, mapped like `p2data.resize_sequence(..., size)` (centre square crop, resize); None
    unless every frame has its .pts."""
    pts = p2data.sequence_points(folder)
    if pts is None:
        return None
    h, w = image_io.read_image(image_io.list_images(folder, recursive=False)[0]).shape[:2]
    sq = min(h, w)
    off = np.array([(w - sq) // 2, (h - sq) // 2], np.float64)
    return (pts - off) * ((size or sq) / sq)


def video_landmarks(videos, size):
    """{sequence name: [T,68,2]} for the --test_videos folders that carry 300VW annotations
    (names as `p2data.collect_sequences` gives them)."""
    out = {}
    for folder in p2data.find_sequences(videos):
        rel = os.path.basename(os.path.dirname(folder)) if folder.endswith("frames") else \
            os.path.basename(folder)
        lm = sequence_landmarks(folder, size)
        if lm is not None:
            out[rel] = lm
    return out


# ------------------------------------------------------------------------------ main ----
def evaluate_protocols(models_, sequences, protocols, tools, seed=0, windows=None):
    """results[protocol][row] = dict(psnr, ssim, auc, failure, ced, cosine, n).
    windows: None (one window per sequence, around its middle frame) or dict(stride=...,
    landmarks={name: [T,68,2]}): every window (`make_window_pairs`); annotated landmarks are then
    the landmark ground truth (box: their bounding box) where present, else the landmarker on
    the sharp frame."""
    results = {}
    for proto in report.progress(protocols, desc="protocols"):
        stored_gt = None
        if windows is None:
            blurred, sharp = make_protocol_pairs(sequences, proto, seed)
        else:
            wp = make_window_pairs(sequences, proto, seed, windows.get("stride", 0),
                                   windows.get("landmarks"), windows.get("only"))
            blurred, sharp = (None, None) if wp is None else (wp["blurred"], wp["sharp"])
            stored_gt = wp["gt"] if wp is not None and np.isfinite(wp["gt"]).any() else None
        if blurred is None:
            logging.warning("protocol %s: no sequence long enough", proto)
            continue
        rows = {name: run(blurred) for name, run in models_.items()}
        rows["blurred"] = blurred
        rows["oracle"] = sharp
        res = {}
        gt = boxes = None
        emb_sharp = None
        if tools is not None and tools.landmarker is not None:
            boxes = [tools.box((proto, i), im) for i, im in enumerate(sharp)]   # found on sharp
            gt = tools.landmarks_many(sharp, boxes)
            if stored_gt is not None:   # 300VW annotations: ground truth and box where present
                boxes, gt = annotated_ground_truth(boxes, gt, stored_gt)
            keep = ~np.isnan(gt).any(axis=(1, 2))  # images where the sharp face has landmarks
        if tools is not None and tools.identity is not None:
            emb_sharp = tools.embed_many(sharp)
        for name, imgs in rows.items():
            r = {"n": len(imgs), "psnr": float(np.mean(metrics.psnr(imgs, sharp))) if name !=
                 "oracle" else None,
                 "ssim": float(np.mean(metrics.ssim(imgs, sharp))) if name != "oracle" else None}
            if gt is not None and keep.any():
                lp = face.landmark_protocol(tools.landmarks_many(imgs, boxes)[keep], gt[keep])
                r.update(auc=lp["auc"], failure=100.0 * lp["failure_rate"],
                         ced=[np.asarray(v).tolist() for v in lp["ced"]], n_landmarks=int(keep.sum()))
            if emb_sharp is not None:
                r["cosine"] = face.identity_similarity(tools.embed_many(imgs), emb_sharp)[
                    "cosine"].tolist()
            r["landmarks_gt"] = ("300VW annotations" if stored_gt is not None
                                 else "landmarker on the sharp frame")
            res[name] = r
        results[proto] = res
        logging.info("%s: %s", proto, {k: (v.get("psnr"), v.get("auc")) for k, v in res.items()})
    return results


def annotated_ground_truth(boxes, found, annotated):
    """Per image: the annotated landmarks (and their bounding box) where finite, else the ones
    found on the sharp frame (and its detected box)."""
    from common.face.base import Box  # pylint: disable=import-outside-toplevel
    gt = np.array(found, np.float64)
    boxes = list(boxes)
    for i, a in enumerate(annotated):
        if np.isfinite(a).all():
            gt[i] = a
            boxes[i] = Box(float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 0].max()),
                           float(a[:, 1].max()), 1.0)
    return boxes, gt


def verification(models_, lfw_dir, pairs_path, per_fold, tools, size, seed=0):
    """Table 8: {row: {L: (mean, std)}} for PrAvg 7 and 11 of every LFW pair image."""
    pairs = face.subset_pairs(face.read_pairs(pairs_path), per_fold)
    rels = face.unique_images(pairs)
    seqs = []
    for rel in rels:
        img = image_io.read_image(os.path.join(lfw_dir, rel))
        seqs.append((rel, _synth(img, size, seed)))
    index = {rel: i for i, rel in enumerate(rels)}
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    a = [index[p.a] for p in pairs]
    b = [index[p.b] for p in pairs]
    out = {}
    for L in (7, 11):
        blurred, sharp = make_protocol_pairs(seqs, f"pravg{L}", seed)
        rows = {name: run(blurred) for name, run in models_.items()}
        rows["blurred"], rows["gt"] = blurred, sharp
        for name, imgs in rows.items():
            e = tools.embed_many(imgs)
            v = face.lfw_verification(e[a], e[b], same, folds)
            out.setdefault(name, {})[L] = (v["mean"], v["std"])
    return out, len(pairs)


def ytf_pairs(ytf_dir, per_split=0):
    """(frame_images_DB path, [(split 1..10, video1, video2, same)]) of YouTube Faces' official
    splits; per_split > 0 keeps the first per_split same and per_split different pairs of each."""
    from data.builders import youtube_faces  # pylint: disable=import-outside-toplevel
    lay = youtube_faces.check_layout(ytf_dir)
    rows = youtube_faces.read_splits(lay["splits"])
    if per_split:
        kept, count = [], {}
        for r in rows:
            key = (r[0], r[3])
            if count.get(key, 0) < per_split:
                count[key] = count.get(key, 0) + 1
                kept.append(r)
        rows = kept
    return lay["db"], rows


def video_windows(frame_paths, length, size, max_windows=0):
    """PrAvg-`length` pairs of one real video: (blurred, sharp) float32 [W,size,size,3] over its
    non-overlapping windows (`window_centres`), evenly subsampled to max_windows (0: all); frames
    centre-square-cropped and resized like `p2data.resize_sequence`. Only the frames of the kept
    windows are read."""
    centres = window_centres(len(frame_paths), f"pravg{length}")
    if not centres:
        raise ValueError(f"video {os.path.dirname(frame_paths[0]) if frame_paths else '?'} has "
                         f"{len(frame_paths)} frames, fewer than PrAvg {length} needs")
    if max_windows and len(centres) > max_windows:
        centres = [centres[i] for i in np.linspace(0, len(centres) - 1, max_windows).round().astype(int)]
    blurred, sharp = [], []
    for c in centres:
        window = np.stack([image_io.read_image(p) for p in frame_paths[c - length // 2:c + length // 2 + 1]])
        b, s = frame_averaging.average_frames(p2data.resize_sequence(window, size))
        blurred.append(np.clip(b, 0, 1))
        sharp.append(s)
    return np.stack(blurred).astype(np.float32), np.stack(sharp).astype(np.float32)


def video_descriptor(embeddings):
    """A video's identity descriptor: the L2-normalised mean of its windows' L2-normalised
    embeddings [W,D] -> [D] (the paper does not say how frames are pooled)."""
    e = np.asarray(embeddings, np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
    m = e.mean(axis=0)
    return m / max(np.linalg.norm(m), 1e-12)


def ytf_verification(models_, ytf_dir, per_split, tools, size, max_windows=0, lengths=(7, 11)):
    """Table 8 on YouTube Faces: dict(ver={row: {L: (mean, std)}}, per_split={row: {L: [accuracy
    of each split]}}, scores={row: {L: [N] pair cosines}}, pairs=[(split, v1, v2, same)]). Every video of a pair: PrAvg-L windows (`video_windows`), each deblurred by
    every row ("blurred" = the input, "gt" = the sharp middle frames), embedded in the face box
    found on its sharp frame, pooled into one descriptor (`video_descriptor`); a pair's score is
    the cosine of its two descriptors; accuracy per official split with the threshold that is
    best on the other splits (`common.face.lfw_verification` with folds = split numbers)."""
    db, rows = ytf_pairs(ytf_dir, per_split)
    from data.builders import youtube_faces  # pylint: disable=import-outside-toplevel
    vids = sorted({v for _, a, b, _ in rows for v in (a, b)})
    same = np.array([r[3] for r in rows])
    folds = np.array([r[0] for r in rows])
    if len(set(folds.tolist())) < 2:
        raise ValueError(f"{ytf_dir}: Table 8 needs pairs from at least 2 splits, got splits "
                         f"{sorted(set(folds.tolist()))}")
    out, per_split_acc, scores = {}, {}, {}
    for L in lengths:
        desc = {}
        for v in report.progress(vids, desc=f"YTF PrAvg {L}"):
            blurred, sharp = video_windows(youtube_faces.video_frames(db, v), L, size, max_windows)
            boxes = [tools.box(("ytf", v, L, i), im) for i, im in enumerate(sharp)]
            imgs = {name: run(blurred) for name, run in models_.items()}
            imgs["blurred"], imgs["gt"] = blurred, sharp
            for name, x in imgs.items():
                desc.setdefault(name, {})[v] = video_descriptor(tools.embed_many(x, boxes))
        for name, d in desc.items():
            r = face.lfw_verification(np.stack([d[a] for _, a, _, _ in rows]),
                                      np.stack([d[b] for _, _, b, _ in rows]), same, folds)
            out.setdefault(name, {})[L] = (r["mean"], r["std"])
            per_split_acc.setdefault(name, {})[L] = [float(x) for x in r["per_fold"]]
            scores.setdefault(name, {})[L] = np.asarray(r["scores"])
    return dict(ver=out, per_split=per_split_acc, scores=scores, pairs=rows)


def _synth(img, size, seed):
    from data import synth_video  # pylint: disable=import-outside-toplevel
    frames = synth_video.synthesize(img, num_frames=21, seed=seed)["frames"]
    return p2data.resize_sequence(np.asarray(frames), size)


def tables(results, ver=None, n_pairs=0, model_names=("ours",), compare_names=(), ver_set="LFW",
           per_split=None):
    """The paper's Tables 4-8 as ``common.report.Table`` objects: every row of the paper's tables
    (the ten compared methods with the paper's numbers only), then the measured ``--compare`` rows
    (``compare_names``), our models, blurred and oracle. ver_set: "YouTube Faces" (the paper's
    set, `ytf_verification`; per_split adds one per-split accuracy table per PrAvg length) or
    "LFW" (the fallback)."""
    cols = ["AUC", "Failure Rate (%)", "SSIM", "PSNR"]
    fmts = {"AUC": ".3f", "Failure Rate (%)": ".3f", "SSIM": ".5f", "PSNR": ".2f"}
    ours_name = model_names[0] if model_names else "ours"
    out = []

    def ours_vals(r):
        return [r.get("auc"), r.get("failure"), r.get("ssim"), r.get("psnr")]

    if "pravg7" in results:
        b7 = results["pravg7"]["blurred"]
        t = Table("Table 4: self evaluation, PrAvg 7", cols, formats=fmts,
                  notes=[f"paper: 300VW, 17,125 images; ours: "
                         f"{b7.get('n_landmarks', b7['n'])} held-out test images; a row is "
                         "'–' when that variant was not given in --workdirs"])
        for name in list(PAPER_TABLE4):
            key = name if name in results["pravg7"] else None
            paper = list(PAPER_TABLE4[name]) + [None]
            t.add(name, ours=ours_vals(results["pravg7"][key]) if key else None, paper=paper)
        out.append(t)
    groups = [("Table 5: PrAvg 7 / 9 / 11", ("pravg7", "pravg9", "pravg11")),
              ("Table 6: PrAvg 15 / 21 / VLA", ("pravg15", "pravg21", "vla")),
              ("Table 7: synthetic (Markov kernels)", ("synthetic",))]
    for title, protos in groups:
        for proto in protos:
            if proto not in results:
                continue
            res = results[proto]
            n = res["blurred"].get("n_landmarks", res["blurred"]["n"])
            src = res["blurred"].get("landmarks_gt", "landmarker on the sharp frame")
            t = Table(f"{title} -- {proto}", cols, formats=fmts,
                      notes=[f"test-set size: ours {res['blurred']['n']} pairs ({n} with landmark "
                             f"ground truth); paper: {PAPER_TEST_PAIRS.get(proto, PAPER_TEST_FRAMES)}",
                             f"landmark ground truth: {src}" + (
                                 "; the oracle row is AUC 1 / failure 0 by construction"
                                 if src != "300VW annotations" else "")])
            for name, vals in PAPER_COMPARISON.items():
                t.add(name, paper=list(vals[proto]) + [None])
            for name in compare_names:
                if name in res:
                    t.add(f"{name} (measured)", ours=ours_vals(res[name]))
            for name in list(model_names) + ["blurred", "oracle"]:
                if name not in res or name in compare_names:
                    continue
                pkey = "ours" if name == ours_name else name
                paper = PAPER[proto].get(pkey)
                t.add("ours" if name == ours_name else name, ours=ours_vals(res[name]),
                      paper=list(paper) + [None] if paper else None)
            out.append(t)
    if ver:
        note = (f"set: YouTube Faces, {n_pairs} pairs of the official splits; each video = the "
                "mean dlib ResNet embedding of its deblurred PrAvg windows (paper: FaceNet)"
                if ver_set == "YouTube Faces" else
                f"set: LFW (fallback: no --ytf_dir), {n_pairs} pairs, one synthetic video per "
                "image; dlib ResNet embeddings (paper: YouTube Faces + FaceNet)")
        t = Table(f"Table 8: verification on {ver_set} (mean acc. ± std)", ["PrAvg 7", "PrAvg 11"],
                  formats={"PrAvg 7": ".4f", "PrAvg 11": ".4f"}, notes=[note])
        for name, vals in PAPER_TABLE8_COMPARISON.items():
            t.add(name, paper=list(vals))
        for name in compare_names:
            if name in ver:
                t.add(f"{name} (measured)", ours=[ver[name].get(7), ver[name].get(11)])
        for name, v in ver.items():
            if name in compare_names:
                continue
            pkey = "ours" if name == ours_name else name
            t.add("ours" if name == ours_name else name, ours=[v.get(7), v.get(11)],
                  paper=list(PAPER_TABLE8[pkey]) if pkey in PAPER_TABLE8 else None)
        out.append(t)
    for L in (7, 11):
        accs = {name: v[L] for name, v in (per_split or {}).items() if L in v}
        if not accs:
            continue
        cols = [f"split {i + 1}" for i in range(len(next(iter(accs.values()))))]
        t = Table(f"Table 8 per split: {ver_set}, PrAvg {L} (accuracy)", cols, formats=".3f",
                  notes=["threshold of each split chosen on the other splits (the paper reports "
                         "only mean ± std)"])
        for name, v in accs.items():
            label = "ours" if name == ours_name else (
                f"{name} (measured)" if name in compare_names else name)
            t.add(label, ours=v)
        out.append(t)
    return out


def plots(results, out_dir):
    """CED (Figs. 9-10) and cosine-similarity (Figs. 11-12) plots per protocol."""
    paths = []
    for proto, res in results.items():
        curves = {k: tuple(np.asarray(c) for c in v["ced"]) for k, v in res.items() if "ced" in v}
        if curves:
            p = os.path.join(out_dir, f"ced_{proto}.png")
            face.plot_ced(curves, p, title=f"CED {proto}")
            paths.append(p)
        dists = {k: np.asarray(v["cosine"]) for k, v in res.items()
                 if "cosine" in v and k != "oracle"}
        if dists:
            p = os.path.join(out_dir, f"cosine_{proto}.png")
            face.plot_similarity(dists, p, title=f"identity cosine similarity {proto}")
            paths.append(p)
    return paths


def run_eval(cfg) -> list:
    """Tables 4-8 from the parsed flags (printed, and written under --out_dir)."""
    if not cfg.workdirs and not cfg.compare:
        raise app.UsageError("--workdirs=name=WORKDIR is required (e.g. final=/tmp/p2/cgan), or "
                             "--compare=NAME=SPEC rows (e.g. shipped:paper2_identity_cgan/cgan_small)")
    models_ = {}
    size = cfg.size
    for item in cfg.workdirs:
        name, _, wd = item.partition("=")
        if not wd:
            name, wd = ("final" if not models_ else f"model{len(models_)}"), name
        train_cfg, models_[name] = load_model(wd)
        if not size:
            size = train_cfg.crop_size  # the size the (first) model was trained at
    trained = list(models_)
    if not size:
        raise app.UsageError("--size=N is required when no --workdirs gives the training size")
    compare = [methods_lib.resolve_method(spec) for spec in cfg.compare]
    for m in compare:
        if m.needs_kernel:
            raise app.UsageError(f"--compare={m.spec}: needs stored blur kernels, which the "
                                 "frame-averaged protocols do not have")
        models_[m.name] = lambda x, m=m: runner.restore_images(m, x)
    seqs = []
    if cfg.test_stills:
        seqs += list(p2data.still_sequences(cfg.test_stills, 21, size, seed=cfg.seed,
                                            limit=cfg.stills_limit or None))
    if cfg.test_videos:
        video_seqs = list(p2data.collect_sequences(cfg.test_videos, "", size))
        seqs += video_seqs
    if not seqs:
        raise app.UsageError("no test data: pass --test_stills and/or --test_videos")
    tools = None
    if cfg.landmarker or cfg.identity_model:
        from common.face import FaceModels  # pylint: disable=import-outside-toplevel
        # boxes from --detector on the sharp image; no box-free detector needed here
        tools = FaceModels(identity_model=cfg.identity_model, landmarker=cfg.landmarker,
                           detector="", box_detector=cfg.detector or "dlib")
    windows = None
    if cfg.every_window and cfg.test_videos:   # real videos: every window; stills: their middle
        video_names = {name for name, _ in video_seqs}
        windows = dict(stride=cfg.window_stride, landmarks=video_landmarks(cfg.test_videos, size),
                       only=video_names)
    results = evaluate_protocols(models_, seqs, cfg.protocols, tools, cfg.seed, windows)
    ver, n_pairs, per_split, ver_set = None, 0, None, "LFW"
    if tools is not None and tools.identity is not None:
        if cfg.ytf_dir:   # the paper's set
            yv = ytf_verification(models_, cfg.ytf_dir, cfg.ytf_pairs_per_split, tools, size,
                                  cfg.ytf_windows_per_video)
            ver, per_split, n_pairs, ver_set = yv["ver"], yv["per_split"], len(yv["pairs"]), \
                "YouTube Faces"
        elif cfg.lfw_dir and cfg.lfw_pairs:   # fallback
            ver, n_pairs = verification(models_, cfg.lfw_dir, cfg.lfw_pairs, cfg.pairs_per_fold,
                                        tools, size, cfg.seed)
    ts = tables(results, ver, n_pairs, trained, [m.name for m in compare], ver_set, per_split)
    text = "\n\n".join(str(t) for t in ts)
    print(text)
    if cfg.out_dir:
        os.makedirs(cfg.out_dir, exist_ok=True)
        with open(os.path.join(cfg.out_dir, "results.md"), "w") as f:
            f.write("\n\n".join(t.to_markdown() for t in ts))
        for i, t in enumerate(ts):
            t.to_csv(os.path.join(cfg.out_dir, f"table_{i}.csv"))
        summary = {p: {k: {m: v.get(m) for m in ("psnr", "ssim", "auc", "failure", "n")}
                       for k, v in r.items()} for p, r in results.items()}
        if ver:
            summary["verification"] = {k: {str(L): list(x) for L, x in v.items()}
                                       for k, v in ver.items()}
            summary["verification_set"] = ver_set
            summary["verification_pairs"] = n_pairs
            if per_split:
                summary["verification_per_split"] = {k: {str(L): x for L, x in v.items()}
                                                     for k, v in per_split.items()}
        with open(os.path.join(cfg.out_dir, "results.json"), "w") as f:
            json.dump(summary, f, indent=1)
        plots(results, cfg.out_dir)
    return ts


def main(argv):
    del argv
    run_eval(flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main)
