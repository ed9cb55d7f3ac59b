"""What a training workdir holds: which paper and stage trained it.

`workdir_kind(path)` tells it from the flags in flags.txt that only one trainer defines;
`describe_kind` / `describe_workdir` put it in words ("a paper-1 SRN workdir");
`check_workdir_kind` refuses a workdir of another paper or stage in one line.
"""
from __future__ import annotations

import os
from typing import Sequence

from common.cli import FLAGS_FILENAME, read_flags_file


# (paper, stage) -> words; the stage of paper 1 is the trainer (srn or cyclegan).
_PAPER_WORDS = {"paper1": "paper-1", "paper2": "paper-2", "paper3": "paper-3"}
_STAGE_WORDS = {"srn": "SRN", "cyclegan": "CycleGAN", "hg": "HG", "cgan": "cGAN"}


def stage_word(stage: str) -> str:
    """"srn" -> "SRN" (the stage as error messages name it)."""
    return _STAGE_WORDS.get(stage, stage)


def workdir_of(path: str) -> str:
    """The workdir of a workdir, its `checkpoints/` folder or a checkpoint prefix in it."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        path = os.path.dirname(path)
    if os.path.basename(path) == "checkpoints" and not os.path.isfile(
            os.path.join(path, FLAGS_FILENAME)):
        path = os.path.dirname(path)
    return path


def workdir_kind(path: str) -> tuple[str, str] | None:
    """(paper, stage) of the training workdir holding `path`, read from its flags.txt, e.g.
    ("paper1", "srn"), ("paper1", "cyclegan"), ("paper2", "cgan"), ("paper3", "umsn");
    None when there is no flags.txt or it is none of these."""
    fl = read_flags_file(workdir_of(path))
    if fl is None:
        return None
    if "ablation" in fl and "stage" in fl:
        return "paper3", fl["stage"]
    if "lambda_ci" in fl and "stage" in fl:
        return "paper2", fl["stage"]
    if "recurrent" in fl or "scale_weights" in fl:
        return "paper1", "srn"
    if "lambda_cycle" in fl:
        return "paper1", "cyclegan"
    return None


def describe_kind(kind: tuple[str, str] | None) -> str:
    """("paper1", "srn") -> "a paper-1 SRN workdir"."""
    if kind is None:
        return "no recognisable training workdir (no flags.txt of this project)"
    paper, stage = kind
    return f"a {_PAPER_WORDS.get(paper, paper)} {stage_word(stage)} workdir"


def describe_workdir(path: str) -> str:
    """What the workdir holding `path` is, in words (`describe_kind`)."""
    return describe_kind(workdir_kind(path))


def check_workdir_kind(path: str, paper: str, stages: Sequence[str], flag: str = "") -> None:
    """Raises ValueError "--flag=PATH is a paper-1 SRN workdir, not a paper-3 umsn one" when the
    workdir holding `path` was trained by another paper or stage. A path without a flags.txt
    (e.g. a bare checkpoint prefix) passes: the restore itself then checks the variables."""
    kind = workdir_kind(path)
    if kind is None and read_flags_file(workdir_of(path)) is None:
        return
    if kind is not None and kind[0] == paper and kind[1] in stages:
        return
    wanted = " or ".join(stage_word(s) for s in stages)
    raise ValueError(f"{flag + '=' if flag else ''}{path} is {describe_kind(kind)}, not a "
                     f"{_PAPER_WORDS.get(paper, paper)} {wanted} one: pass the workdir of that "
                     f"training stage.")
