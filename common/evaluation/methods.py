"""Deblurring methods for evaluation: anything mapping float32 [B,H,W,3] in [0, 1] to restored
images of the same shape, with a name, a parameter count and a stride.

Method specs (`--method=NAME=SPEC` or `--method=SPEC` on the `common.compare` CLI):

    blurred                         the input itself (identity; the reference row)
    unsharp                         unsharp masking x + (x - Gaussian_2(x)): a classical
                                    baseline that needs no kernel
    wiener                          non-blind Wiener deconvolution with the test set's stored
                                    kernel (skimage.restoration.wiener, balance 0.01)
    rl                              non-blind Richardson-Lucy, 30 iterations, stored kernel
                                    (skimage.restoration.richardson_lucy)
    paper1:WORKDIR | paper2:WORKDIR | paper3:WORKDIR
                                    a training workdir of that paper (rebuilt from flags.txt,
                                    newest checkpoint), loaded by the paper's `evaluate.load_method`
    WORKDIR                         the same; the paper is read from WORKDIR/flags.txt
                                    (`common.papers.of_workdir`)
    FILE.keras                      a whole model saved by `common.inference.export_model`
    SAVED_MODEL_DIR                 a TF SavedModel folder (saved_model.pb) serving images -> images
    shipped:PACKAGE/NAME (or PACKAGE/NAME)
                                    PACKAGE/weights/NAME.keras shipped in the repository
    module:function                 a Python callable images -> images (may carry `num_params`
                                    and `stride` attributes)
    photo:SPEC                      SPEC (a network) run the way `deblur` runs it by default:
                                    MTCNN faces brought to the model's trained face scale
                                    (`common.photo.deblur_photo`; whole image when none found)

Any spec may end in `,stride=N` (inputs are reflect-padded to a multiple of N; 1 = any size),
and a blind method's in `,self_ensemble` (`common.self_ensemble`: the mean over the 8 flips and
quarter turns of the input, undone; 8x the time).
`wiener` and `rl` need a test set that stores kernels (`DIR/kernels/NAME.npy` or the records'
`kernel`); the runner refuses them on other sets with a one-line error.

Paper packages are imported lazily by name through the paper registry (`common.papers`: each
package's `spec.py` gives its stride, Keras modules and `load_method`), never at module level:
`common` imports no paper package otherwise.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Callable

import numpy as np

from common import papers, self_ensemble
from common.train import workdirs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CLASSICAL = ("blurred", "unsharp", "wiener", "rl")
WIENER_BALANCE = 0.01
RL_ITERATIONS = 30
UNSHARP_RADIUS, UNSHARP_AMOUNT = 2.0, 1.0



@dataclasses.dataclass
class Method:
    """A deblurring method.

    fn: images float32 [B,H,W,3] in [0, 1] (and kernels, a list of float32 [k,k], when
      `needs_kernel`) -> float [B,H,W,3]; `__call__` clips to [0, 1] and returns float32.
    num_params: weights of the network (0 for classical methods, None when unknown).
    stride: inputs are padded to a multiple of it (1: any size).
    """
    name: str
    fn: Callable
    kind: str
    spec: str = ""
    num_params: int | None = 0
    stride: int = 1
    needs_kernel: bool = False
    description: str = ""

    def __call__(self, images, kernels=None) -> np.ndarray:
        images = np.asarray(images, np.float32)
        if self.needs_kernel:
            if kernels is None or any(k is None for k in kernels):
                raise ValueError(f"method {self.name!r} ({self.spec}) needs the blur kernel of every "
                                 "image; use a test set that stores kernels (DIR/kernels/NAME.npy)")
            out = self.fn(images, kernels)
        else:
            out = self.fn(images)
        if isinstance(out, dict):
            if len(out) != 1:
                raise ValueError(f"method {self.name!r} returned a dict with keys {sorted(out)}")
            out = next(iter(out.values()))
        out = np.asarray(out, np.float32)
        if out.shape != images.shape:
            raise ValueError(f"method {self.name!r} returned shape {out.shape} for input {images.shape}")
        return np.clip(out, 0.0, 1.0)

    def info(self) -> dict:
        return {"name": self.name, "spec": self.spec, "kind": self.kind, "num_params": self.num_params,
                "stride": self.stride, "needs_kernel": self.needs_kernel,
                "description": self.description}


# ------------------------------------------------------------------------ classical baselines
def _per_channel(images, fn):
    out = np.empty_like(images, dtype=np.float32)
    for b in range(images.shape[0]):
        for c in range(images.shape[-1]):
            out[b, ..., c] = fn(b, images[b, ..., c].astype(np.float64))
    return out


def _padded_deconv(img, kernel, deconv):
    """Reflect-pad by the kernel size (less ringing from the FFT's circular borders), deconvolve,
    crop back."""
    k = np.asarray(kernel, np.float64)
    k = k / k.sum()
    p = k.shape[0]
    x = np.pad(img, p, mode="reflect" if p < min(img.shape) else "symmetric")
    return deconv(x, k)[p:-p, p:-p]


def unsharp(images, radius=UNSHARP_RADIUS, amount=UNSHARP_AMOUNT):
    """Unsharp masking: x + amount * (x - G_radius(x)), G a Gaussian of std `radius` per channel
    (reflect borders), clipped to [0, 1] by the caller. (skimage 0.26's unsharp_mask returns
    garbage for float32 input with preserve_range, so the two lines are written here.)"""
    from scipy import ndimage
    x = np.asarray(images, np.float64)
    g = ndimage.gaussian_filter(x, sigma=(0, radius, radius, 0), mode="reflect")
    return (x + amount * (x - g)).astype(np.float32)


def wiener(images, kernels, balance=WIENER_BALANCE):
    """Non-blind Wiener deconvolution per channel with each image's kernel (skimage)."""
    from skimage.restoration import wiener as _wiener
    return _per_channel(images, lambda b, x: _padded_deconv(
        x, kernels[b], lambda xp, k: _wiener(xp, k, balance, clip=False)))


def richardson_lucy(images, kernels, num_iter=RL_ITERATIONS):
    """Non-blind Richardson-Lucy deconvolution per channel with each image's kernel (skimage)."""
    from skimage.restoration import richardson_lucy as _rl
    return _per_channel(images, lambda b, x: _padded_deconv(
        np.clip(x, 1e-4, 1.0), kernels[b], lambda xp, k: _rl(xp, k, num_iter=num_iter, clip=False)))


def classical(name: str) -> Method:
    if name == "blurred":
        return Method("blurred", lambda x: x, "classical", "blurred", description="the input itself")
    if name == "unsharp":
        return Method("unsharp", unsharp, "classical", "unsharp",
                      description=f"unsharp masking, radius {UNSHARP_RADIUS:g}, amount {UNSHARP_AMOUNT:g}")
    if name == "wiener":
        return Method("wiener", wiener, "classical", "wiener", needs_kernel=True,
                      description=f"non-blind Wiener, stored kernel, balance {WIENER_BALANCE:g}")
    if name == "rl":
        return Method("rl", richardson_lucy, "classical", "rl", needs_kernel=True,
                      description=f"non-blind Richardson-Lucy, stored kernel, {RL_ITERATIONS} iterations")
    raise ValueError(f"unknown classical method {name!r}; choose one of {CLASSICAL}")


# ------------------------------------------------------------------------ learned models
def count_params(model, probe=None) -> int | None:
    """Number of weights of a Keras model / tf.Module (None when it has none we can see).
    probe: an input to build an unbuilt Keras model with first (e.g. zeros [1,16,16,3])."""
    if probe is not None and hasattr(model, "built") and not model.built:
        model(probe)
    if hasattr(model, "count_params"):
        try:
            return int(model.count_params())
        except ValueError:
            pass
    variables = getattr(model, "variables", None)
    if variables is None:
        return None
    return int(sum(int(np.prod(v.shape)) for v in variables))


def _package_of(path: str) -> str | None:
    parts = os.path.abspath(path).split(os.sep)
    for pkg in papers.PACKAGES.values():
        if pkg in parts:
            return pkg
    return None


def from_keras(path: str, name: str, spec: str, stride: int | None = None) -> Method:
    from common import inference
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--method {name}={spec}: model file {path} not found")
    pkg = _package_of(path)
    # a .keras file outside a paper package may hold any paper's layers: register them all
    for spec_ in [papers.for_package(pkg)] if pkg else papers.all_specs():
        spec_.register_keras()
    try:
        model = inference.load_keras(path)
    except inference.ModelFileError as e:  # one line that also names the --method
        raise inference.ModelFileError(f"--method {name}={spec}: {e}") from None
    # a file outside the package (an export dir): the paper of the loaded model's class
    pkg = pkg or type(model).__module__.split(".")[0]
    paper = papers.for_package(pkg)
    stride = stride or getattr(model, "stride", None) or (paper.stride if paper else 1)
    return Method(name, model, "keras", spec, count_params(model), int(stride),
                  description=f"Keras model {path}")


def from_saved_model(path: str, name: str, spec: str, stride: int | None = None) -> Method:
    from common import inference
    try:
        fn = inference.load_saved_model(path)
    except inference.ModelFileError as e:
        raise inference.ModelFileError(f"--method {name}={spec}: {e}") from None
    return Method(name, fn, "saved_model", spec, getattr(fn, "num_params", None), int(stride or 1),
                  description=f"SavedModel {path}")


def shipped_path(ref: str) -> str:
    """PACKAGE/NAME -> REPO/PACKAGE/weights/NAME.keras (the shipped-weights convention)."""
    pkg, _, wname = ref.partition("/")
    if not pkg or not wname:
        raise ValueError(f"shipped weights must be named PACKAGE/NAME (e.g. paper3_umsn/umsn_small), "
                         f"got {ref!r}")
    pkg = papers.PACKAGES.get(pkg, pkg)
    from common import inference  # pylint: disable=import-outside-toplevel
    return inference.shipped_weights(os.path.join(REPO_ROOT, pkg), wname.removesuffix(".keras"))


def detect_paper(workdir: str) -> str:
    """'paper1' | 'paper2' | 'paper3' from a training workdir's flags.txt (its `# paper:` line,
    or for an older workdir a flag only that paper defines: `common.train.workdirs`)."""
    path = os.path.join(workdir, "flags.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: a workdir method must be a training workdir "
                                "(flags.txt + checkpoints/), or prefix the paper (paper3:DIR)")
    paper = workdirs.workdir_paper(workdir)
    if paper is None:
        raise ValueError(f"{path}: cannot tell which paper trained this workdir (no '# paper:' "
                         f"line, no flag only one paper defines); prefix it: paper1:DIR, "
                         f"paper2:DIR or paper3:DIR")
    return paper


def from_workdir(workdir: str, name: str, spec: str, paper: str | None = None) -> Method:
    paper = paper or detect_paper(workdir)
    if paper not in papers.names():
        raise ValueError(f"--method {name}={spec}: unknown paper {paper!r}; choose one of "
                         f"{sorted(papers.names())}")
    # lazy import by name (common.papers): any paper may be loaded; common itself imports none
    m = papers.get(paper).load_method(workdir)
    m.name, m.spec = name, spec
    return m


def from_callable(ref: str, name: str, spec: str, stride: int | None = None) -> Method:
    module, _, attr = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--method {name}={spec}: cannot import {attr!r} from module {module!r} ({e}); "
                         "give module:function of a callable images -> images on PYTHONPATH") from e
    if not callable(fn):
        raise ValueError(f"--method {name}={spec}: {ref} is not callable")
    return Method(name, fn, "callable", spec, getattr(fn, "num_params", None),
                  int(stride or getattr(fn, "stride", 1)), description=f"Python callable {ref}")


# ------------------------------------------------------------------------ spec parsing
def parse_method_flag(value: str) -> tuple[str, str]:
    """'NAME=SPEC' -> (NAME, SPEC); 'SPEC' -> (a name derived from SPEC, SPEC)."""
    head, sep, tail = value.partition("=")
    if sep and head and "/" not in head and ":" not in head and "," not in head:
        return head, tail
    spec = value
    base = spec.split(",", 1)[0].rstrip("/")
    if base in CLASSICAL:
        return base, spec
    name = os.path.basename(base.split(":")[-1]) or base
    return os.path.splitext(name)[0], spec


def from_photo(inner: str, name: str, spec: str, detector: str = "mtcnn") -> Method:
    """photo:SPEC: the network of SPEC through `common.photo.deblur_photo` (stride 1 outside:
    the photo path pads each region to the network's stride itself)."""
    from common import photo
    from common.face import get_detector
    m = resolve_method(inner, name)
    if m.kind == "classical" or m.needs_kernel:
        raise ValueError(f"--method {name}={spec}: photo: needs a network spec, not {inner!r}")
    base = inner.split(",stride=", 1)[0]
    path = shipped_path(base.partition(":")[2]) if base.startswith("shipped:") else base
    scale = photo.read_face_scale(path if path.endswith(".keras") else None)
    fn = photo.photo_method(m.fn, get_detector(detector), m.stride, scale)
    return Method(name, fn, "photo", spec, m.num_params, 1,
                  description=f"{m.description} via common.photo.deblur_photo (face box "
                  f"{scale.face_box} px at {scale.crop_size})")


def resolve_method(spec: str, name: str | None = None) -> Method:
    """A Method from a spec (see the module docstring)."""
    if name is None:
        name, spec = parse_method_flag(spec)
    if not spec:
        raise ValueError(f"--method {name}=: empty spec; see `python -m common.compare --help`")
    if spec.startswith("photo:"):
        return from_photo(spec[len("photo:"):], name, spec)
    base, ensemble = spec, False
    if base.endswith(",self_ensemble"):
        base, ensemble = base[:-len(",self_ensemble")], True
    m = _resolve(base, name, spec)
    if ensemble:
        if m.needs_kernel:
            raise ValueError(f"--method {name}={spec}: self_ensemble is for blind restorers, "
                             f"not {m.kind}")
        fn = m.fn
        m.fn = lambda images: self_ensemble.self_ensemble(fn, images)
        m.description = (m.description + "; " if m.description else "") + "8x self-ensemble"
    return m


def _resolve(spec: str, name: str, full_spec: str) -> Method:
    """`resolve_method` without the ,self_ensemble suffix (`full_spec` keeps it, for the row)."""
    base, stride = spec, None
    if ",stride=" in spec:
        base, _, s = spec.partition(",stride=")
        try:
            stride = int(s)
        except ValueError as e:
            raise ValueError(f"--method {name}={spec}: stride must be an integer, got {s!r}") from e
    if base in CLASSICAL:
        m = classical(base)
        m.name, m.spec = name, full_spec
        return m
    prefix, sep, rest = base.partition(":")
    if sep and prefix in papers.names():
        return from_workdir(rest, name, full_spec, paper=prefix)
    if sep and prefix == "shipped":
        return from_keras(shipped_path(rest), name, full_spec, stride)
    if base.endswith(".keras"):
        return from_keras(base, name, full_spec, stride)
    if os.path.isdir(base):
        if os.path.isfile(os.path.join(base, "saved_model.pb")):
            return from_saved_model(base, name, full_spec, stride)
        return from_workdir(base, name, full_spec)
    if not sep and base.count("/") == 1 and os.path.isfile(shipped_path(base)):
        return from_keras(shipped_path(base), name, full_spec, stride)
    if sep and not os.path.exists(base):
        return from_callable(base, name, full_spec, stride)
    raise ValueError(f"--method {name}={spec}: not a classical method {CLASSICAL}, an existing .keras "
                     "file, SavedModel or workdir folder, shipped:PACKAGE/NAME or module:function")
