"""`python -m common.face`: the face-analysis protocols on LFW (see `common.face.evaluate`).

    python -m common.face --output_dir=/tmp/face_eval \
        --protocols=verification,landmarks,detection,identity,recognition \
        --conditions=sharp,blurred [--restored_dir=DIR --conditions=sharp,blurred,restored]

Writes results.md (tables in the papers' layout), one CSV per protocol, results.json, PNG plots and
TensorBoard summaries (output_dir/tensorboard). Embeddings are cached in output_dir/cache so an
interrupted run resumes. The flags are the fields of `common.face.config.EvalConfig`; a bad value
or a combination that does not fit is one `FATAL Flags parsing error` line and exit code 1.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time

from absl import app, flags

from common.face.config import RULES, EvalConfig

_DEFINE = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer,
           "float": flags.DEFINE_float, "list": flags.DEFINE_list, "bool": flags.DEFINE_bool}


def _validator(names, rule):
    def check(values):
        problem = rule(*(values[n] for n in names))
        if problem:
            raise flags.ValidationError(problem)
        return True
    return check


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    """One flag per `EvalConfig` field (same name, default and help); --output_dir is required and
    every rule of `config.RULES` is a validator of the flags it reads."""
    for f in dataclasses.fields(EvalConfig):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        meta = f.metadata
        if meta["kind"] == "enum":
            flags.DEFINE_enum(f.name, default, list(meta["choices"]), meta["help"], flag_values=fv)
        else:
            _DEFINE[meta["kind"]](f.name, default, meta["help"], flag_values=fv)
    flags.mark_flag_as_required("output_dir", flag_values=fv)
    for names, rule in RULES:
        if names == ("output_dir",):  # mark_flag_as_required says it in absl's words
            continue
        flags.register_multi_flags_validator(list(names), _validator(names, rule), flag_values=fv)
    return fv


def config_from_flags(fv: flags.FlagValues = flags.FLAGS) -> EvalConfig:
    return EvalConfig(**{f.name: fv[f.name].value for f in dataclasses.fields(EvalConfig)})


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    from common.face import FaceBackendMissing
    from common.face.evaluate import run
    cfg = config_from_flags()
    t0 = time.time()
    try:
        run(cfg)
    except (FileNotFoundError, FaceBackendMissing) as e:  # a missing input or model: its message says which
        sys.exit(f"FATAL common.face: {e}")
    with open(os.path.join(cfg.output_dir, "results.md")) as f:
        print(f.read())
    print(f"[common.face] done in {time.time() - t0:.1f} s; outputs in {cfg.output_dir}")

