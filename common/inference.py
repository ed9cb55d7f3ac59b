"""Paper-agnostic inference helpers for every paper's `deblur` CLI and model export.

A "model" here is any callable taking float32 [B,H,W,3] images in [0, 1] and returning float
[B,H,W,3] (a Keras model, a `tf.function`, a SavedModel signature wrapper, a lambda in tests).

    fast = fast_model(keras_model, "auto")   # traced, bfloat16 where the CPU/GPU has it, fused IN
    restored = deblur_image(model, img, stride=4)              # any size: reflect-pad, run, crop
    restored = deblur_image(model, img, stride=4, tile=256)    # big images in overlapping tiles
    restored = deblur_faces(model, img, detector, stride=4)    # detect -> crop -> deblur -> paste
    outs = deblur_files(model, paths, output_dir, stride=4)    # never overwrites an input
    outs = run_deblur(load_fn, checkpoint, paths, output_dir, stride=4, face_detector="mtcnn")
    export_model(keras_model, out_dir)   # out_dir/model.keras + out_dir/saved_model/
    model = load_keras(path)             # safe_mode=True
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import Callable, Iterable, Sequence

import numpy as np

from common import hardware, image_io, keras_utils


# --------------------------------------------------------------------------- fast path

INFER_PRECISIONS = ("auto", "float32", "bfloat16")


def _is_float32_policy(value) -> bool:
    """A serialized float32 DTypePolicy (not a plain "float32" string: that is a tensor dtype,
    e.g. a functional model's InputLayer's, which its config needs)."""
    if isinstance(value, dict) and "Policy" in str(value.get("class_name", "")):
        return value.get("config", {}).get("name") == "float32"
    return False


def _strip_float32_policies(cfg):
    """A serialized Keras config without its float32 dtype policies (so that rebuilding under
    another global policy uses that one); every other entry as is."""
    if isinstance(cfg, dict):
        return {k: _strip_float32_policies(v) for k, v in cfg.items()
                if not (k == "dtype" and _is_float32_policy(v))}
    if isinstance(cfg, list):
        return [_strip_float32_policies(v) for v in cfg]
    return cfg


def rebuilt_copy(model, policy: str = "float32", sample_size: int = 32):
    """The same Keras model rebuilt from its config under the dtype `policy`, weights copied.

    policy "mixed_bfloat16": bfloat16 compute, float32 variables; layers that the model's code
    creates with an explicit dtype="float32" (output convs, heads) stay float32 (true of
    subclassed models, whose inner layers are made in `__init__`, not read from the config).
    Weights are copied in order; a structure mismatch raises ValueError. sample_size: side of
    the zero image [1,S,S,3] that builds the copy (a multiple of the network's stride).
    """
    import keras
    cfg = _strip_float32_policies(keras.saving.serialize_keras_object(model))
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        copy = keras.saving.deserialize_keras_object(cfg)
        copy(np.zeros((1, sample_size, sample_size, 3), np.float32))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    src, dst = model.weights, copy.weights
    if [tuple(w.shape) for w in src] != [tuple(w.shape) for w in dst]:
        raise ValueError(f"the {policy} rebuild of {type(model).__name__} does not have the "
                         "model's weights (a layer built outside __init__?): use "
                         "--precision=float32 --nofused_norm")
    copy.set_weights(model.get_weights())
    return copy


def resolve_precision(precision: str = "auto") -> str:
    """"auto": bfloat16 where the hardware computes it natively (a GPU, or a CPU with AVX512-BF16
    / AMX: `common.hardware.cpu_bfloat16_support`), else float32."""
    if precision not in INFER_PRECISIONS:
        raise ValueError(f"--precision={precision!r}: choose one of {INFER_PRECISIONS}")
    if precision != "auto":
        return precision
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        return "bfloat16"
    return "bfloat16" if hardware.cpu_bfloat16_support() else "float32"


def load_policy(precision: str = "auto", fused_norm: bool = True) -> str | None:
    """The dtype policy a deblur CLI loads a `.keras` file under so that `fast_model(...,
    in_place=True)` needs no rebuild: "mixed_bfloat16" when `precision` resolves to bfloat16,
    else None (float32: the file as saved)."""
    del fused_norm  # fused norms are applied in place, whatever the policy
    return "mixed_bfloat16" if resolve_precision(precision) == "bfloat16" else None


def static_shape_fn(model, batch: int = 8):
    """[N,H,W,3] float -> [N,H,W,3] in [0, 1] through a Keras deblurrer whose layers need static
    sizes (paper 2's HG resizes), ``batch`` images at a time, one ``tf.function`` trace per
    image shape; ``.model`` is the model."""
    import numpy as np
    import tensorflow as tf
    fn = tf.function(model)

    def run(images):
        outs = [fn(tf.constant(images[i:i + batch], tf.float32)).numpy()
                for i in range(0, len(images), batch)]
        return np.clip(np.concatenate(outs), 0.0, 1.0)
    run.model = model
    return run


def fast_model(model, precision: str = "auto", fused_norm: bool = True, jit_compile: bool = False,
               sample_size: int = 32, in_place: bool = False):
    """A faster inference callable for a Keras deblurrer: float32 [B,H,W,3] -> float32 [B,H,W,3].

    The model runs inside one `tf.function`, traced once per batch size with H and W unknown
    (one graph for every image, tile and face size: a trace of the shipped UMSN costs ~1 s) or,
    for a network that needs static sizes, once per input shape; on a copy (`rebuilt_copy`,
    the given model is left as is) in bfloat16 when `precision` resolves to it (output cast to
    float32) and with fused instance norms when fused_norm (`keras_utils.fuse_instance_norms`);
    with XLA when jit_compile. Same maths as float32 up to rounding (bfloat16: ~3 significant
    digits). in_place: the model is the caller's to change (freshly loaded): its norms are fused
    in place and no copy is made when it already computes in the wanted precision (loaded with
    `load_keras(path, policy=load_policy(...))`). Anything that is not a `keras.Model` (a wrapper
    function, a SavedModel) is returned as is (with "auto"; an explicit "bfloat16" raises
    ValueError for it). benchmarks/infer_speed.py measures each option.
    """
    import keras
    import tensorflow as tf
    requested, precision = precision, resolve_precision(precision)
    if not isinstance(model, keras.Model):
        if requested == "bfloat16":
            raise ValueError("--precision=bfloat16 needs a Keras model (an exported .keras "
                             "file); this checkpoint loads as a function: use --precision=float32")
        return model
    net = model
    fused_norm = bool(fused_norm) and bool(keras_utils.instance_norms(model))
    want = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    has = model.dtype_policy.name
    if (in_place and has != want) or (not in_place and (precision == "bfloat16" or fused_norm)):
        net = rebuilt_copy(model, want, sample_size)
    if fused_norm:
        keras_utils.fuse_instance_norms(net)

    @tf.function(jit_compile=bool(jit_compile))
    def traced(images):
        out = net(images)
        if isinstance(out, dict):
            if len(out) != 1:
                raise ValueError(f"model returned a dict with keys {sorted(out)}")
            out = next(iter(out.values()))
        return tf.cast(out, tf.float32)

    graphs = {}  # batch size -> the concrete function with H, W unknown (or `traced`)

    def run(images):
        images = tf.convert_to_tensor(images, tf.float32)
        key = (images.shape[0], images.shape[-1])
        fn = graphs.get(key)
        if fn is None:
            try:
                fn = traced.get_concrete_function(tf.TensorSpec([key[0], None, None, key[1]],
                                                                tf.float32))
            except Exception:  # noqa: BLE001 - a network that needs static sizes: per shape
                fn = traced
            graphs[key] = fn
        return fn(images)

    run.model, run.precision, run.traced, run.graphs = net, precision, traced, graphs
    run.fused_norm, run.jit_compile = fused_norm, bool(jit_compile)
    return run


# --------------------------------------------------------------------------- model cache


def default_cache_dir() -> str:
    """$FACEDEBLUR_CACHE, else $XDG_CACHE_HOME/facedeblur, else ~/.cache/facedeblur."""
    env = os.environ.get("FACEDEBLUR_CACHE")
    if env is not None:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "facedeblur")


def _cache_key(path: str, precision: str, fused_norm: bool) -> str:
    """sha256 of what the traced graph depends on: the .keras file's bytes, the precision and
    fused-norm options, TensorFlow's and Keras's versions, and the code that builds the graph
    (this module's fast_model, common/keras_utils.py, the model's package's .py files)."""
    import hashlib
    import inspect
    import json
    import keras
    import tensorflow as tf
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    cls = check_keras_file(path).get("registered_name") or ""
    package = re.split(r"[>.]", cls)[0]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = [os.path.join(root, "common", "keras_utils.py")]
    if re.fullmatch(r"paper\d_\w+", package) and os.path.isdir(os.path.join(root, package)):
        code += sorted(os.path.join(root, package, n) for n in os.listdir(
            os.path.join(root, package)) if n.endswith(".py"))
    for c in code:
        with open(c, "rb") as f:
            h.update(f.read())
    h.update(inspect.getsource(fast_model).encode())
    h.update(json.dumps([precision, bool(fused_norm), tf.__version__, keras.__version__]).encode())
    return h.hexdigest()[:24]


def _serve_cached(loaded, path: str):
    """The callable of a cached SavedModel: float32 [B,H,W,3] -> float32 [B,H,W,3] (batch 1
    graph; a larger batch runs image by image)."""
    import tensorflow as tf
    fn = loaded.serve

    def run(images, _keep=loaded):
        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape[0] == 1:
            return fn(images)
        return tf.concat([fn(images[i:i + 1]) for i in range(images.shape[0])], 0)
    run.cache_path = path
    run.precision, run.fused_norm, run.jit_compile = loaded.precision.numpy().decode(), \
        bool(loaded.fused_norm.numpy()), False
    return run


def cached_fast_model(load: Callable, model_file: str | None, precision: str = "auto",
                      fused_norm: bool = True, jit_compile: bool = False,
                      cache_dir: str | None = None, log: Callable | None = None):
    """`fast_model(load(), ...)`, kept on disk: the first run of a `.keras` file saves the traced
    graph (H, W unknown, batch 1) as a SavedModel in cache_dir/<key> (`_cache_key`); later runs
    load that (~2 s on this CPU) instead of building the Keras model and tracing it (~7 s).

    load(policy) -> the model (policy: `load_policy`'s, for a Keras file). No caching when
    model_file is not a `.keras` file, cache_dir is "", jit_compile, or the network cannot be
    traced with H, W unknown (paper 1's SRN: traced per shape as before); a cache that cannot be
    written (read-only, full) or read (damaged) is logged in one line and the model built as
    without one. Returns the callable; `.cache_path` says where it came from or went (or None).
    """
    import shutil
    policy = load_policy(precision, fused_norm)
    cacheable = bool(cache_dir) and not jit_compile and bool(model_file) and \
        str(model_file).endswith(".keras") and os.path.isfile(model_file)
    entry = None
    if cacheable:
        import tensorflow as tf
        entry = os.path.join(cache_dir, _cache_key(model_file, resolve_precision(precision),
                                                   fused_norm))
        if os.path.isfile(os.path.join(entry, "saved_model.pb")):
            try:
                return _serve_cached(tf.saved_model.load(entry), entry)
            except Exception as e:  # noqa: BLE001 - a damaged entry: rebuild and replace it
                if log:
                    log(f"model cache {entry} unreadable ({type(e).__name__}); rebuilding it")
                shutil.rmtree(entry, ignore_errors=True)
    model = fast_model(load(policy), precision, fused_norm=fused_norm, jit_compile=jit_compile,
                       in_place=True)
    model.cache_path = None
    if entry is None or not hasattr(model, "traced"):
        return model
    import tensorflow as tf
    try:
        graph = model.traced.get_concrete_function(tf.TensorSpec([1, None, None, 3], tf.float32))
    except Exception:  # noqa: BLE001 - a net that needs static sizes (paper 1's SRN): not cached
        return model
    try:
        os.makedirs(cache_dir, exist_ok=True)
        module = tf.Module()
        # The graph's variables, not the Keras model: a SavedModel of the model's object graph
        # (every layer) took 1.9x as long to load, with the same outputs.
        module.state, module.serve = list(model.model.variables), model.traced
        module.precision = tf.Variable(model.precision, trainable=False)
        module.fused_norm = tf.Variable(model.fused_norm, trainable=False)
        tmp = tempfile.mkdtemp(dir=cache_dir, prefix=".tmp-")
        from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
        verbosity = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.WARNING)  # SavedModel's INFO lines: not news
        try:
            tf.saved_model.save(module, tmp, signatures=graph)
            os.replace(tmp, entry)
        finally:
            absl_logging.set_verbosity(verbosity)
            shutil.rmtree(tmp, ignore_errors=True)
        model.cache_path = entry
        model.graphs[(1, 3)] = graph
    except Exception as e:  # noqa: BLE001 - no cache (read-only, full, static-size net): run on
        if log:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            log(f"model cache {cache_dir} not written ({type(e).__name__}: {first[:160]}); "
                f"the next run builds the model again")
    return model


def _run(model, batch: np.ndarray) -> np.ndarray:
    out = model(batch.astype(np.float32))
    if isinstance(out, dict):
        if len(out) != 1:
            raise ValueError(f"model returned a dict with keys {sorted(out)}; wrap it to return one image")
        out = next(iter(out.values()))
    out = np.asarray(out, dtype=np.float32)
    if out.shape != batch.shape:
        raise ValueError(f"model returned shape {out.shape} for input {batch.shape}")
    return out


def _hann(n: int) -> np.ndarray:
    w = np.hanning(n + 2)[1:-1]
    return np.maximum(w, 1e-3).astype(np.float32)


def deblur_image(model: Callable, img, stride: int = 1, tile: int = 0, overlap: int = 32) -> np.ndarray:
    """Deblurs one image of any size: float32 [H,W,3] in [0, 1] out.

    img: uint8 or float [H,W,3]. The image (or each tile) is reflect-padded to a multiple of
    `stride`, run, and cropped back. tile > 0: images larger than `tile` are processed in
    tile x tile windows overlapping by `overlap` pixels, blended with a Hann window.
    """
    x = image_io.to_float32(img)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"expected an RGB image [H,W,3], got shape {x.shape}")
    h, w = x.shape[:2]
    if not tile or (h <= tile and w <= tile):
        padded = np.asarray(keras_utils.pad_to_multiple(x, stride))
        return np.clip(_run(model, padded[None])[0, :h, :w], 0.0, 1.0)
    if tile % stride:
        raise ValueError(f"tile {tile} must be a multiple of the network stride {stride}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap}")
    out = np.zeros_like(x)
    weight = np.zeros((h, w, 1), np.float32)
    step = tile - overlap
    ys = list(range(0, max(h - tile, 0) + 1, step))
    xs = list(range(0, max(w - tile, 0) + 1, step))
    if ys[-1] + tile < h:
        ys.append(h - tile)
    if xs[-1] + tile < w:
        xs.append(w - tile)
    for y0 in ys:
        for x0 in xs:
            y0c, x0c = max(y0, 0), max(x0, 0)
            patch = x[y0c:y0c + tile, x0c:x0c + tile]
            ph, pw = patch.shape[:2]
            padded = np.asarray(keras_utils.pad_to_multiple(patch, stride))
            res = _run(model, padded[None])[0, :ph, :pw]
            win = (_hann(ph)[:, None] * _hann(pw)[None, :])[..., None]
            out[y0c:y0c + ph, x0c:x0c + pw] += res * win
            weight[y0c:y0c + ph, x0c:x0c + pw] += win
    return np.clip(out / np.maximum(weight, 1e-8), 0.0, 1.0)


# --------------------------------------------------------------------------- faces


def _box_tuple(box):
    for names in (("left", "top", "right", "bottom"), ("x0", "y0", "x1", "y1")):
        if all(hasattr(box, n) for n in names):
            return tuple(float(getattr(box, n)) for n in names)
    if hasattr(box, "box"):
        return _box_tuple(box.box)
    vals = tuple(float(v) for v in box)[:4]
    return vals


def deblur_faces(model: Callable, img, detector, stride: int = 1, margin: float = 0.3,
                 size: int | None = None, tile: int = 0) -> np.ndarray:
    """Detects faces, deblurs an enlarged crop of each, pastes it back; float32 [H,W,3].

    detector: an object with `.detect(uint8 image) -> list of boxes` (x0, y0, x1, y1) (e.g.
    `common.face.get_detector("mtcnn")`). margin: fraction of the box side added on each side.
    size: if given, the crop is resized to size x size for the network (and back).
    No face found -> the whole image is deblurred.
    """
    x = image_io.to_float32(img)
    boxes = list(detector.detect(image_io.to_uint8(x)))
    if not boxes:
        return deblur_image(model, x, stride, tile)
    out = x.copy()
    h, w = x.shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = _box_tuple(box)
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        l, t = int(max(0, np.floor(x0 - mx))), int(max(0, np.floor(y0 - my)))
        r, b = int(min(w, np.ceil(x1 + mx))), int(min(h, np.ceil(y1 + my)))
        if r - l < 2 or b - t < 2:
            continue
        crop = x[t:b, l:r]
        if size:
            from PIL import Image
            small = np.asarray(Image.fromarray(image_io.to_uint8(crop)).resize((size, size), Image.BICUBIC))
            res = deblur_image(model, small, stride)
            res = image_io.to_float32(np.asarray(
                Image.fromarray(image_io.to_uint8(res)).resize((r - l, b - t), Image.BICUBIC)))
        else:
            res = deblur_image(model, crop, stride, tile)
        out[t:b, l:r] = res
    return out


# --------------------------------------------------------------------------- files


def output_paths(inputs: Sequence[str], output_dir: str, suffix: str = "", ext: str = ".png",
                 keep_jpeg: bool = False) -> list[str]:
    """Output path per input: output_dir/<stem><suffix><ext> (keep_jpeg: .jpg for a JPEG input;
    a video, `common.video.is_video`: .mp4).

    Refuses (ValueError) when an output would be an input file, or when two inputs map to one
    output name, so inputs are never overwritten.
    """
    from common import video  # pylint: disable=import-outside-toplevel
    if not output_dir:
        raise ValueError("--output_dir is required")

    def out_ext(p):
        if video.is_video(p):
            return ".mp4"
        return ".jpg" if keep_jpeg and os.path.splitext(p)[1].lower() in (".jpg", ".jpeg") \
            else ext
    outs = [os.path.join(output_dir, os.path.splitext(os.path.basename(p))[0] + suffix
                         + out_ext(p)) for p in inputs]
    real_inputs = {os.path.realpath(p) for p in inputs}
    for p, o in zip(inputs, outs):
        if os.path.realpath(o) in real_inputs:
            raise ValueError(f"output {o} would overwrite the input {p}: choose another --output_dir "
                             "or a suffix")
    if len(set(outs)) != len(outs):
        dup = sorted({o for o in outs if outs.count(o) > 1})
        raise ValueError(f"several inputs map to the same output name(s) {dup[:3]}: rename them or "
                         "deblur them into separate --output_dir folders")
    return outs


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Files as given (images or videos); folders expanded to their images
    (common.image_io.list_images); a glob pattern ("shoot/*.jpg", "**" recursive) that the shell
    did not expand (quoted) expanded to the files it matches, sorted."""
    import glob  # pylint: disable=import-outside-toplevel
    files = []
    for p in inputs:
        if os.path.isdir(p):
            files.extend(image_io.list_images(p))
        elif os.path.isfile(p):
            files.append(p)
        elif glob.has_magic(p):
            found = sorted(f for f in glob.glob(p, recursive=True) if os.path.isfile(f))
            if not found:
                raise FileNotFoundError(f"input pattern {p} matches no file")
            files.extend(found)
        else:
            raise FileNotFoundError(f"input {p} does not exist")
    if not files:
        raise ValueError("no input image given")
    return files


class InputErrors(RuntimeError):
    """Some inputs could not be deblurred; the others were. `.written`: the outputs written,
    `.failures`: one "INPUT: reason" line per bad input."""

    def __init__(self, written: list[str], failures: list[str]):
        self.written, self.failures = written, failures
        super().__init__(f"{len(failures)} of {len(written) + len(failures)} input(s) not "
                         f"deblurred:\n" + "\n".join(failures))


def compare_path(dst: str) -> str:
    """OUT/photo_umsn.jpg -> OUT/photo_umsn_compare.jpg (the --compare side-by-side image)."""
    stem, ext = os.path.splitext(dst)
    return stem + "_compare" + (ext if ext in (".jpg", ".png") else ".png")


def write_compare(dst: str, before, after, max_side: int = 2400, quality: int = 90) -> str:
    """Writes `before | after` side by side with their labels (`image_io.contact_sheet`), each
    shrunk to at most max_side px on its long side; JPEG at `quality` for a .jpg dst."""
    from common import photo  # pylint: disable=import-outside-toplevel
    pair = []
    for im in (before, after):
        im = image_io.to_uint8(np.asarray(im))[..., :3]
        f = min(1.0, max_side / max(im.shape[:2]))
        if f < 1.0:
            im = image_io.to_uint8(photo.resize(image_io.to_float32(im),
                                                (round(im.shape[0] * f), round(im.shape[1] * f))))
        pair.append(im)
    sheet = image_io.contact_sheet([pair], labels=["input", "deblurred"])
    if dst.endswith(".jpg"):
        from PIL import Image  # pylint: disable=import-outside-toplevel
        pil = Image.fromarray(sheet)
        return image_io.atomic_write(dst, lambda f: pil.save(f, format="JPEG", quality=quality))
    return image_io.write_image(dst, sheet) or dst


def deblur_files(model: Callable, inputs: Sequence[str], output_dir: str, stride: int = 1,
                 tile: int = 0, detector=None, face_size: int | None = None, suffix: str = "",
                 overwrite: bool = False, photo_options: dict | None = None,
                 max_memory: float | None = None, jpeg_quality: int = 0,
                 compare: bool = False, video_options: dict | None = None,
                 progress: bool | None = None, log: Callable | None = None) -> list[str]:
    """Deblurs image and video files (or folders, or glob patterns) into output_dir; returns
    the written paths.

    photo_options (a dict, possibly empty): the scale-aware default of the CLIs,
    `common.photo.deblur_photo(model, img, detector, stride=, **photo_options)` (faces at the
    model's trained scale, pasted back; the whole image when none is found, logged). Else
    detector: `deblur_faces` at face_size; neither: the whole image, in tiles of `tile` px, or
    (tile 0) tiled automatically under max_memory bytes (`common.photo.deblur_bounded`).
    Outputs: PNG; jpeg_quality > 0: a JPEG input is written as JPEG at that quality (EXIF
    orientation applied, ICC profile kept); an input with an alpha channel keeps it untouched
    (RGBA PNG: `image_io.read_extras`); a 16-bit PNG stays 16-bit (pixels the deblurring did
    not change keep all 16 bits). A video (`common.video.is_video`) becomes an MP4 through
    `common.video.deblur_video` (faces tracked across frames; video_options: its
    detect_every, smoothing; --whole_image: every frame whole). compare: also writes
    `compare_path(dst)`, input | output side by side (images only). progress: a tqdm bar over
    the inputs (and a video's frames) on stderr (None: when stderr is a terminal).
    Existing outputs are kept unless overwrite=True (FileExistsError before any work; inputs are
    never overwritten). Every input is tried: one that cannot be read (corrupt, not an image) or
    that the network rejects does not stop the others; once all are done, `InputErrors` lists
    each bad one in one line (and holds the written paths).
    """
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    from common import photo, video  # pylint: disable=import-outside-toplevel
    files = expand_inputs(inputs)
    outs = output_paths(files, output_dir, suffix, keep_jpeg=jpeg_quality > 0)
    existing = [dst for dst in outs if os.path.exists(dst)]
    existing += [compare_path(d) for d, f in zip(outs, files)
                 if compare and not video.is_video(f) and os.path.exists(compare_path(d))]
    if existing and not overwrite:  # refused before any work: the fix is one flag for all
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]}{more} exists: pass --overwrite or another "
                              "--output_dir")
    written, failures = [], []
    bound = dict(max_memory=max_memory) if max_memory else {}
    bar = tqdm(list(zip(files, outs)), unit="file", disable=None if progress is None else
               not progress or len(files) < 2, leave=False)
    for src, dst in bar:
        try:
            if video.is_video(src):
                opts = dict(photo_options or {})
                info = video.deblur_video(
                    model, src, dst, detector, stride=stride, scale=opts.get(
                        "scale", photo.FaceScale()), whole_image=detector is None,
                    progress=progress, **bound, **(video_options or {}))
                written.append(dst)
                if log:
                    log(f"{src}: {info['frames']} frames at {info['fps']:g} fps, audio "
                        f"{info['audio']}, {info['frames_without_face']} frame(s) without a "
                        f"face left as they were")
                continue
            img = image_io.read_image(src)
            if photo_options is not None:
                res, info = photo.deblur_photo(model, img, detector, stride=stride,
                                               **{**bound, **photo_options})
                if log and info["whole_image"]:
                    log(f"{src}: no face found, deblurred the whole image")
            elif detector is not None:
                res = deblur_faces(model, img, detector, stride, size=face_size, tile=tile)
            elif tile:
                res = deblur_image(model, img, stride, tile)
            else:
                res = photo.deblur_bounded(model, img, stride, **bound)
            res = image_io.to_uint8(np.asarray(res))
            if dst.endswith(".jpg"):
                written.append(photo.write_jpeg_like(dst, res, src, jpeg_quality))
            else:
                extras = image_io.read_extras(src)
                written.append(image_io.write_with_extras(dst, res, img, **extras))
            if compare:
                write_compare(compare_path(dst), img, res)
        except (ValueError, OSError) as e:  # ImageReadError and VideoError are ValueErrors
            lines = str(e).strip().splitlines() or [type(e).__name__]
            failures.append(f"{src}: {lines[0]}")
    bar.close()
    if failures:
        raise InputErrors(written, failures)
    return written


# --------------------------------------------------------------------------- CLI


def define_export_flags(fv, *, workdir_help: str, serve_size: int | None = None,
                        stride: int = 1) -> None:
    """The flags of a paper's `export` CLI: --workdir --export_dir --checkpoint --weights_dtype
    [--serve_size]."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    flags.DEFINE_string("workdir", None, workdir_help, flag_values=fv)
    flags.DEFINE_string("export_dir", None, "Output folder.", flag_values=fv)
    flags.DEFINE_string("checkpoint", "latest", "Which checkpoint of --workdir: latest, best (the "
                        "one kept by the run's --best_metric), or a prefix such as "
                        "WORKDIR/checkpoints/ckpt-1000.", flag_values=fv)
    flags.DEFINE_enum("weights_dtype", "float32", WEIGHTS_DTYPES, "How the .keras file stores "
                      "its kernels: float16 halves the file (the loaded model still computes in "
                      "float32, its kernels rounded to float16); the SavedModel stays float32.",
                      flag_values=fv)
    if serve_size:
        flags.DEFINE_integer("serve_size", serve_size, "The SavedModel's input size (a multiple "
                             f"of {stride}).", flag_values=fv)


def export_main(argv: Sequence[str], export: Callable, fv) -> None:
    """`main` of an export CLI defined by `define_export_flags`: prints
    export(workdir, export_dir[, serve_size], checkpoint=..., weights_dtype=...) (the written
    paths)."""
    from absl import app  # pylint: disable=import-outside-toplevel
    del argv
    if not fv.workdir or not fv.export_dir:
        raise app.UsageError("--workdir and --export_dir are required")
    extra = (fv.serve_size,) if "serve_size" in fv else ()
    try:
        print(export(fv.workdir, fv.export_dir, *extra, checkpoint=fv.checkpoint,
                     weights_dtype=fv.weights_dtype))
    except Exception as e:  # noqa: BLE001 - bad workdir/checkpoint or a full disk: one line
        import sys  # pylint: disable=import-outside-toplevel
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from common.train.errors import CheckpointError  # pylint: disable=import-outside-toplevel
        if not isinstance(e, (ValueError, OSError, CheckpointError, tf.errors.OpError)):
            raise
        text = e.message if isinstance(e, tf.errors.OpError) else str(e)
        first = text.splitlines()[0] if text else type(e).__name__
        sys.stderr.write(f"error: export of --workdir={fv.workdir} --checkpoint={fv.checkpoint} "
                         f"failed: {first}\n")
        sys.exit(1)


def define_deblur_flags(fv, *, checkpoint_help: str, suffix: str, stride: int) -> None:
    """The flags of a paper's `deblur` CLI that takes its inputs as positional arguments:
    --checkpoint --output_dir --suffix --whole_image --face_detector --face_size --max_memory
    --tile --quality --overwrite --precision --fused_norm --xla --compare --detect_every
    --smoothing --model_cache."""
    from absl import flags
    d = dict(flag_values=fv)
    flags.DEFINE_string("checkpoint", None, checkpoint_help, **d)
    flags.DEFINE_string("output_dir", None, "Where the deblurred images go (PNG; JPEG for a "
                        "JPEG input).", **d)
    flags.DEFINE_string("suffix", suffix, "Appended to each output file name.", **d)
    flags.DEFINE_bool("whole_image", False, "Deblur the whole image at its own resolution "
                      "(default: detect faces, deblur each at the model's trained face scale, "
                      "paste back; the whole image only when no face is found).", **d)
    flags.DEFINE_string("face_detector", "mtcnn", "mtcnn | haar | dlib: the face detector.", **d)
    flags.DEFINE_integer("face_size", 0, "Resize each face crop (box + 30 percent margin) to this "
                         "size instead of the model's trained face scale (0: trained scale).", **d)
    flags.DEFINE_float("max_memory", 2.0, "GB of memory the network may use; larger images "
                       "and faces are processed in tiles that fit.", lower_bound=0.05, **d)
    flags.DEFINE_integer("tile", 0, "Process whole images larger than this in overlapping tiles "
                         f"(0: tiles sized by --max_memory; a multiple of {stride}).", **d)
    flags.DEFINE_integer("quality", 95, "JPEG quality of the output of a JPEG input (0: write "
                         "PNG for every input).", lower_bound=0, upper_bound=100, **d)
    flags.DEFINE_bool("overwrite", False, "Replace existing outputs (never inputs).", **d)
    flags.DEFINE_enum("precision", "auto", list(INFER_PRECISIONS), "Inference arithmetic of a "
                      "Keras model: auto = bfloat16 on a GPU or a CPU with bfloat16 units "
                      "(AVX512-BF16/AMX), else float32; output always float32.", **d)
    flags.DEFINE_bool("fused_norm", True, "Run instance norms as one fused kernel (same "
                      "formula; faster).", **d)
    flags.DEFINE_bool("xla", False, "Compile the model with XLA (measured slower on CPUs: "
                      "benchmarks/README.md).", **d)
    flags.DEFINE_bool("compare", False, "Also write OUTPUT_compare.jpg (.png): the input and "
                      "the output side by side.", **d)
    flags.DEFINE_integer("detect_every", 1, "Videos: detect faces every N frames (tracked and "
                         "smoothed in between).", lower_bound=1, **d)
    flags.DEFINE_float("smoothing", 0.6, "Videos: weight of a face box's previous position "
                       "when a new detection moves it (0: no smoothing).", lower_bound=0.0,
                       upper_bound=0.95, **d)
    flags.DEFINE_string("model_cache", None, "Folder where the traced model of a .keras file is "
                        "kept so that later runs start in ~2 s instead of ~7 s (default: "
                        "$FACEDEBLUR_CACHE or ~/.cache/facedeblur; '' for none).", **d)


def run_deblur(load_model: Callable, checkpoint, inputs: Sequence[str], output_dir: str, *,
               stride: int, suffix: str = "", tile: int = 0, face_detector: str | None = None,
               face_size: int = 0, overwrite: bool = False, precision: str = "auto",
               fused_norm: bool = True, xla: bool = False, scale_faces: bool = False,
               model_path: str | None = None, max_memory: float = 0.0, quality: int = 0,
               model_cache: str | None = "", compare: bool = False, detect_every: int = 1,
               smoothing: float = 0.6, log: Callable | None = None) -> list[str]:
    """load_model(checkpoint) -> model, then `deblur_files`; returns the written paths.

    scale_faces (the CLIs' default; off with --whole_image): `common.photo.deblur_photo` with
    face_detector (mtcnn when None) and the face scale of the sidecar of checkpoint (or, without
    one, of model_path: the shipped model). Else face_detector: a `common.face.get_detector`
    name (None: whole images); face_size 0: face crops go to the network at their own size.
    max_memory: GB for the network's work (0: 2 GB). quality > 0: JPEG out for JPEG in.
    compare: side-by-side images; detect_every, smoothing: videos' face tracking
    (`deblur_files`).
    precision, fused_norm, xla: `fast_model`'s options for a Keras model (other loaders'
    functions run as they are). load_model(checkpoint, policy=) (a loader that takes `policy`)
    builds a `.keras` file once, under the inference policy (`load_keras`). model_cache: the
    folder of `cached_fast_model` for such a loader's `.keras` file (checkpoint, or model_path
    without one; None: `default_cache_dir()`; "", the default here: none, so that library
    callers and tests write nothing outside their outputs; the CLIs' `with_model_cache`
    defaults it to `default_cache_dir()`).
    """
    from common import photo  # pylint: disable=import-outside-toplevel
    import inspect  # pylint: disable=import-outside-toplevel
    takes_policy = "policy" in inspect.signature(load_model).parameters

    def load(policy):
        return load_model(checkpoint, policy=policy) if takes_policy else load_model(checkpoint)
    model_file = checkpoint if checkpoint else model_path
    if model_cache is None:
        model_cache = default_cache_dir()
    model = cached_fast_model(load, model_file if takes_policy else None, precision,
                              fused_norm=fused_norm, jit_compile=xla, cache_dir=model_cache,
                              log=log)
    detector, photo_options = None, None
    if scale_faces:
        face_detector = face_detector or "mtcnn"
        scale = photo.read_face_scale(checkpoint if checkpoint and str(checkpoint).endswith(
            ".keras") else model_path)
        photo_options = {"scale": scale}
    if face_detector:
        from common.face import get_detector  # pylint: disable=import-outside-toplevel
        detector = get_detector(face_detector)
    return deblur_files(model, inputs, output_dir, stride=stride, tile=tile, detector=detector,
                        face_size=face_size or None, suffix=suffix, overwrite=overwrite,
                        photo_options=photo_options, jpeg_quality=quality,
                        max_memory=max_memory * 1e9 if max_memory else None, compare=compare,
                        video_options={"detect_every": detect_every, "smoothing": smoothing},
                        log=log)


def with_model_cache(run: Callable) -> Callable:
    """A deblur CLI's `run` whose model_cache defaults to `default_cache_dir()` (--model_cache,
    when given, still wins): what the `deblur` commands pass to `deblur_main`."""
    def cli_run(*args, **options):
        options.setdefault("model_cache", default_cache_dir())
        return run(*args, **options)
    return cli_run


def deblur_main(argv: Sequence[str], run: Callable, fv) -> None:
    """`main` of a deblur CLI defined by `define_deblur_flags`: argv[1:] are the inputs,
    run(checkpoint, inputs, output_dir, suffix=, tile=, face_detector=, face_size=, overwrite=,
    precision=, fused_norm=, xla=, scale_faces=, max_memory=, quality=, log=[, model_cache=,
    compare=, detect_every=, smoothing= when given on the command line]) deblurs them (usually
    `run_deblur` with the paper's loader); prints each written path.
    scale_faces: not --whole_image and no --face_size (face_detector None under --whole_image)."""
    import sys  # pylint: disable=import-outside-toplevel
    from absl import app  # pylint: disable=import-outside-toplevel
    if len(argv) < 2:
        raise app.UsageError("give one or more input images or folders")
    log = lambda msg: sys.stderr.write(f"note: {msg}\n")
    try:
        paths = run(fv.checkpoint, argv[1:], fv.output_dir, suffix=fv.suffix, tile=fv.tile,
                    face_detector=None if fv.whole_image else fv.face_detector,
                    face_size=fv.face_size, overwrite=fv.overwrite, precision=fv.precision,
                    fused_norm=fv.fused_norm, xla=fv.xla,
                    scale_faces=not fv.whole_image and not fv.face_size,
                    max_memory=fv.max_memory, quality=fv.quality, log=log,
                    **{k: fv[k].value for k in ("model_cache", "compare", "detect_every",
                                                "smoothing") if k in fv and fv[k].present})
    except InputErrors as e:  # the good inputs are done; one line per bad one, then exit 1
        for path in e.written:
            print(path)
        sys.stdout.flush()
        for line in e.failures:
            sys.stderr.write(f"error: {line}\n")
        sys.stderr.write(f"{len(e.failures)} of {len(e.written) + len(e.failures)} input(s) "
                         f"failed.\n")
        sys.exit(1)
    except ModelFileError as e:  # a bad model file is not a usage mistake: one line, exit 1
        sys.stderr.write(f"error: {e}\n")
        sys.exit(1)
    except (FileExistsError, FileNotFoundError, ValueError) as e:  # one line, no traceback
        # (wrong inputs or a checkpoint of the wrong kind: "is a paper-1 SRN workdir, not ...")
        raise app.UsageError(str(e)) from e
    for path in paths:
        print(path)


# --------------------------------------------------------------------------- export


WEIGHTS_DTYPES = ("float32", "float16")


def _half_precision_h5(data: bytes) -> bytes:
    """A Keras `model.weights.h5` (bytes) with every float32 array of rank >= 2 (the conv and
    dense kernels: almost all the bytes) stored as float16; vectors (biases, norm scales and
    moving statistics, whose small values float16 would flush) and non-float arrays stay as they
    are. Keras casts each array to its variable's dtype on load, so the model keeps float32
    variables. Raises ValueError naming the first array float16 cannot hold (|x| > 65504)."""
    import io
    import h5py  # pylint: disable=import-outside-toplevel
    half_max = float(np.finfo(np.float16).max)
    out = io.BytesIO()
    with h5py.File(io.BytesIO(data), "r") as fin, h5py.File(out, "w") as fout:
        fout.attrs.update(fin.attrs)

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                fout.require_group(name).attrs.update(obj.attrs)
                return
            value = obj[()]
            if value.dtype == np.float32 and value.ndim >= 2:
                if not np.all(np.isfinite(value)) or np.max(np.abs(value)) > half_max:
                    raise ValueError(f"weights {name} {value.shape} hold values float16 cannot "
                                     f"store (non-finite or |x| > {half_max:g}): export with "
                                     f"--weights_dtype=float32")
                value = value.astype(np.float16)
            fout.create_dataset(name, data=value).attrs.update(obj.attrs)
        fin.visititems(copy)
    return out.getvalue()


def deflate_zip(path: str, weights_dtype: str = "float32") -> int:
    """Rewrites a `.keras` file (a zip that Keras writes uncompressed) with DEFLATE, level 9, in
    place; Keras loads it unchanged (trained float32 weights shrink ~13 %). weights_dtype
    "float16" also stores the kernels in half precision (`_half_precision_h5`: the file halves;
    the loaded model has float32 variables, its kernels rounded to float16). Returns the size."""
    import zipfile
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"weights_dtype={weights_dtype!r}: one of {', '.join(WEIGHTS_DTYPES)}")
    tmp = path + ".deflate"
    try:
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED,
                                                           compresslevel=9) as zout:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if weights_dtype == "float16" and info.filename.endswith(".weights.h5"):
                    data = _half_precision_h5(data)
                zout.writestr(info.filename, data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return os.path.getsize(path)


def export_model(model, out_dir: str, name: str = "model", input_size: int | None = None,
                 weights_dtype: str = "float32") -> dict:
    """Writes out_dir/<name>.keras (Keras format, DEFLATE-compressed, its kernels stored as
    `weights_dtype`: `deflate_zip`) and out_dir/saved_model (TF SavedModel, float32).

    The SavedModel serves `serve(images float32 [B,H,W,3]) -> [B,H,W,3]` (dynamic H, W; pad to
    the network stride before calling). Both are written to temporary names then renamed.
    Returns {"keras": path, "saved_model": path}.
    """
    import shutil
    import tensorflow as tf
    os.makedirs(out_dir, exist_ok=True)
    keras_path = os.path.join(out_dir, name + ".keras")
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=out_dir)
    os.close(fd)
    try:
        model.save(tmp)
        deflate_zip(tmp, weights_dtype)
        os.chmod(tmp, image_io.umask_mode())  # mkstemp's file is 0600; outputs get the umask's mode
        os.replace(tmp, keras_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    sm_path = os.path.join(out_dir, "saved_model")
    tmp_dir = tempfile.mkdtemp(dir=out_dir, prefix=".saved_model_tmp")
    shutil.rmtree(tmp_dir)
    spec = tf.TensorSpec([None, input_size, input_size, 3], tf.float32, name="images")
    if hasattr(model, "export"):
        model.export(tmp_dir, format="tf_saved_model", input_signature=[spec])
    else:
        module = tf.Module()
        module.serve = tf.function(lambda images: model(images), input_signature=[spec])
        tf.saved_model.save(module, tmp_dir)
    if os.path.exists(sm_path):
        shutil.rmtree(sm_path)
    os.replace(tmp_dir, sm_path)
    return {"keras": keras_path, "saved_model": sm_path}


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and what it is not."""


def _paper_of(class_path: str) -> str:
    """'paper2_identity_cgan>CGANDeblurrer' -> 'a paper-2 model (paper2_identity_cgan ...)'."""
    package = re.split(r"[>.]", class_path or "?")[0]
    m = re.match(r"paper(\d)_", package)
    return f"a paper-{m.group(1)} model ({class_path})" if m else f"a {class_path} model"


def check_keras_file(path: str) -> dict:
    """Checks that `path` is a whole Keras archive before Keras reads it; returns its
    config.json. Raises FileNotFoundError (missing) or ModelFileError naming the file and what
    it is not: not a Keras archive (another format), a zip but not a Keras model, truncated, or
    damaged."""
    import json
    import zipfile
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} not found")
    if os.path.isdir(path):
        raise ModelFileError(f"model file {path} is a folder, not a .keras file (a SavedModel "
                             f"folder or a workdir goes without the .keras suffix)")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(4)
    redo = "re-export it (python -m paperN_*.export) or fetch it again"
    if not zipfile.is_zipfile(path):
        if head == b"PK\x03\x04":
            raise ModelFileError(f"model file {path} is truncated ({size:,} bytes, a zip archive "
                                 f"without its end): {redo}")
        raise ModelFileError(f"model file {path} is not a Keras archive (a .keras file is a zip; "
                             f"its {size:,} bytes start with {head!r}): pass a model written by "
                             f"an export command")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "config.json" not in names:
                held = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
                raise ModelFileError(
                    f"model file {path} is a zip archive but not a Keras model (no config.json; "
                    f"it holds {held or 'nothing'})")
            bad = z.testzip()
            if bad is not None:
                raise ModelFileError(f"model file {path} is damaged ({bad} fails its checksum): "
                                     f"{redo}")
            return json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"model file {path} is damaged ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}): {redo}") from None


def load_keras(path: str, policy: str | None = None):
    """Loads a `.keras` file with safe_mode=True (custom layers must be registered by importing
    their package first). A file that is no whole Keras archive, or a model whose classes this
    process does not know (another paper's), raises ModelFileError in one line naming it.

    policy (e.g. "mixed_bfloat16"): the model is built from its config under that dtype policy
    (its float32 policies stripped, as `rebuilt_copy` does) and the file's weights loaded into
    it: what `fast_model` would otherwise rebuild, in one Keras build instead of two (a build of
    the shipped UMSN costs ~5.5 s of Python graph construction on this CPU)."""
    import keras
    config = check_keras_file(path)
    try:
        if policy is None:
            return keras.saving.load_model(path, safe_mode=True)
        return _load_keras_under(path, config, policy)
    except Exception as e:  # noqa: BLE001 - Keras' messages name no file: one line that does
        class_path = config.get("registered_name") or config.get("class_name") or "?"
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, TypeError) and "Could not locate" in msg:
            raise ModelFileError(
                f"model file {path} holds {_paper_of(class_path)}, which this command does not "
                f"load (its classes are not imported here): pass a model of this command's "
                f"paper, or score any paper's file with python -m common.compare "
                f"--method=NAME={path}") from None
        raise ModelFileError(f"model file {path} ({_paper_of(class_path)}) cannot be loaded "
                             f"({type(e).__name__}: {msg[:200]})") from None


def _load_keras_under(path: str, config: dict, policy: str):
    import zipfile
    import keras
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.saving.deserialize_keras_object(_strip_float32_policies(config),
                                                      safe_mode=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "model.weights.h5")
        with open(weights, "wb") as f:
            f.write(z.read("model.weights.h5"))
        model.load_weights(weights)
    return model


def load_saved_model(path: str):
    """Loads an exported SavedModel; returns a callable images -> images."""
    import tensorflow as tf
    try:
        loaded = tf.saved_model.load(path)
    except Exception as e:  # noqa: BLE001 - protobuf / TF errors name no file: one line that does
        text = getattr(e, "message", None) or str(e) or type(e).__name__
        raise ModelFileError(f"SavedModel {path} cannot be loaded ({type(e).__name__}: "
                             f"{text.splitlines()[0][:200]}): pass a folder written by an export "
                             f"command") from None
    fn = loaded.serve if hasattr(loaded, "serve") else loaded.signatures["serving_default"]

    def call(images, _keep=loaded):  # _keep holds the loaded object (its variables) alive
        return fn(tf.convert_to_tensor(images, tf.float32))
    call.num_params = int(sum(int(np.prod(v.shape)) for v in getattr(loaded, "variables", ())))
    return call


# --------------------------------------------------------------------------- shipped weights


def shipped_weights(package_dir: str, name: str) -> str:
    """Path of a paper's shipped model: <package>/weights/<name>.keras (see its <name>.md)."""
    return os.path.join(package_dir, "weights", name + ".keras")


def checkpoint_or_shipped(checkpoint, shipped_path: str, flag: str = "--checkpoint") -> str:
    """`checkpoint` when given, else the shipped `.keras` model (a clear error if it is missing)."""
    if checkpoint:
        return checkpoint
    if not os.path.isfile(shipped_path):
        raise FileNotFoundError(
            f"{flag} not given and the shipped model {shipped_path} is missing (a checkout "
            f"without weights?): pass {flag}=<a trained workdir or an exported .keras file>")
    return shipped_path
