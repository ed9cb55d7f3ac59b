"""The options of the LFW face evaluation: one dataclass, from which the CLI defines its flags.

    cfg = EvalConfig(output_dir="/tmp/face", protocols=["verification"])  # checked on creation
    common.face.run(cfg)
"""
from __future__ import annotations

import dataclasses
import os

from common.face.sources import CONDITIONS
from common.paths import SHARED_DATA

PROTOCOLS = ("verification", "landmarks", "detection", "identity", "recognition")
DEFAULT_KERNELS = os.path.join(SHARED_DATA, "kernels/levin09.npz")
IDENTITY_MODELS = ("dlib_resnet", "vgg_face")
BOX_SOURCES = ("sharp", "detect")


def _opt(default, help_text, kind=None, choices=None):
    """A field with its flag's help, kind (string|integer|float|list|bool|enum) and enum choices."""
    kind = kind or {str: "string", int: "integer", float: "float", list: "list",
                    bool: "bool"}.get(type(default), "string")
    meta = {"help": help_text, "kind": kind, "choices": choices}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _unknown(name, values, known):
    bad = sorted(set(values) - set(known))
    return bad and f"--{name}: unknown {bad}; choose from {', '.join(known)}"


# (the options a rule reads, rule -> an error message or None). The CLI turns each rule into an
# absl validator of exactly those flags, so a bad value is one "FATAL Flags parsing error" line.
RULES = [
    (("output_dir",), lambda d: not d and "--output_dir is required"),
    (("protocols",), lambda p: _unknown("protocols", p, PROTOCOLS)),
    (("conditions",), lambda c: (not c and f"--conditions: give at least one of {', '.join(CONDITIONS)}")
     or _unknown("conditions", c, CONDITIONS)),
    (("identity_model",), lambda m: m not in IDENTITY_MODELS and
     f"--identity_model={m!r}: choose one of {IDENTITY_MODELS}"),
    (("box_source",), lambda b: b not in BOX_SOURCES and f"--box_source={b!r}: choose one of {BOX_SOURCES}"),
    (("conditions", "protocols"), lambda c, p: "sharp" not in c and {"identity", "landmarks"} & set(p) and
     "--conditions must include 'sharp' for the identity and landmark protocols (the sharp image is "
     "their reference)"),
    (("conditions", "restored_dir"), lambda c, r: "restored" in c and not r and
     "--conditions=restored needs --restored_dir (a folder mirroring the LFW layout)"),
    (("identity_model", "vgg_face_weights"), lambda m, w: m == "vgg_face" and not w and
     "--identity_model=vgg_face needs --vgg_face_weights=PATH (none ships, nothing is downloaded)"),
]


@dataclasses.dataclass
class EvalConfig:
    output_dir: str | None = _opt(None, "where tables, plots, JSON and TensorBoard go (required)")
    lfw_dir: str = _opt(os.path.join(SHARED_DATA, "lfw"), "LFW folder (<Name>/<Name>_0001.jpg)")
    pairs: str = _opt(os.path.join(SHARED_DATA, "lfw_pairs.txt"), "LFW pairs.txt")
    protocols: list = _opt(["verification", "landmarks", "detection"], f"any of {', '.join(PROTOCOLS)}")
    conditions: list = _opt(["sharp", "blurred"], f"any of {', '.join(CONDITIONS)}")
    restored_dir: str | None = _opt(None, "restored images mirroring the LFW layout")
    blur_kernels: str = _opt(DEFAULT_KERNELS, "blur kernel bank: .npz/.mat path or "
                        "camera_shake|markov|gaussian|defocus")
    centre_kernels: bool = _opt(False, "move each kernel of a --blur_kernels file onto its centroid "
                                "(common.blur.centre_kernel): recorded kernels such as Levin "
                                "et al.'s sit up to 4.3 px off centre and also translate the "
                                "face, which landmark NME against the sharp face counts as error "
                                "(an error with a generator: its kernels are centred already)")
    noise_sigma: float = _opt(0.0, "Gaussian noise std added after blurring ([0,1] scale)")
    pairs_per_fold: int = _opt(0, "use only the first N same + N different pairs per fold (0 = all; "
                               "-1 = the largest subset already in the embedding cache, to report a "
                               "partial full run)")
    num_images: int = _opt(1000, "images (from the pairs) for landmarks/detection/identity (0 = all)")
    detectors: list = _opt(["mtcnn", "haar"], "detectors for the detection protocol")
    identity_model: str = _opt("dlib_resnet", "identity embedding", "enum", IDENTITY_MODELS)
    vgg_face_weights: str | None = _opt(None, "Keras weights file for VGG-Face (not shipped)")
    dlib_models_dir: str | None = _opt(None, "folder with dlib .dat models (default: face_recognition_models)")
    gt_landmarks: str | None = _opt(None, "npz with `paths` [N] and `landmarks` [N,68,2] ground truth")
    box_source: str = _opt("sharp", "face boxes for landmarks/identity", "enum", BOX_SOURCES)
    max_error: float = _opt(0.08, "CED/AUC upper limit and failure threshold")
    num_ids: int = _opt(100, "recognition: identities")
    gallery_per_id: int = _opt(9, "recognition: gallery images per identity")
    seed: int = _opt(0, "seed of image subsets and splits")
    cache_dir: str | None = _opt(None, "embedding cache (default output_dir/cache); runs sharing it "
                                 "resume each other's work")

    def __post_init__(self):
        self.protocols, self.conditions = list(self.protocols), list(self.conditions)
        self.detectors = list(self.detectors)
        self.check()

    def check(self) -> None:
        """ValueError naming the flag when an option, or a combination, does not fit (RULES)."""
        values = dataclasses.asdict(self)
        for names, rule in RULES:
            problem = rule(*(values[n] for n in names))
            if problem:
                raise ValueError(problem)

    @property
    def cache_folder(self) -> str:
        return self.cache_dir or os.path.join(self.output_dir, "cache")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def default_config(**overrides) -> EvalConfig:
    """The CLI's defaults with overrides, checked; for paper `evaluate.py` scripts:

        common.face.run(default_config(output_dir=..., conditions=["sharp", "blurred", "restored"],
                                       restored_dir=..., protocols=["verification"]))
    """
    known = {f.name for f in dataclasses.fields(EvalConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"default_config: unknown option(s) {unknown}; known: {sorted(known)}")
    return EvalConfig(**overrides)
