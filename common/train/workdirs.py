"""What a training workdir holds: which paper and stage trained it.

`workdir_kind(path)` reads the `# paper:` / `# stage:` lines that `common.cli.save_flags` writes
into flags.txt; for a workdir written before those lines existed it falls back to the flags
only one trainer defines (`legacy_kind`). `describe_kind` / `describe_workdir` put it in words
("a paper-1 SRN workdir"); `check_workdir_kind` refuses a workdir of another paper or stage in
one line; `workdir_paper` is the paper alone (evaluation's method specs).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from common.cli import FLAGS_FILENAME, read_flags_file, read_run_header


# (paper, stage) -> words; the stage of paper 1 is the trainer (srn or cyclegan).
_PAPER_WORDS = {"paper1": "paper-1", "paper2": "paper-2", "paper3": "paper-3"}
_STAGE_WORDS = {"srn": "SRN", "cyclegan": "CycleGAN", "hg": "HG", "cgan": "cGAN"}
# Workdirs written before flags.txt had `# paper:` lines: a flag only that paper's trainer
# defines names the paper even where the stage cannot be told (`workdir_paper`).
_LEGACY_PAPER_FLAGS = (("ablation", "paper3"), ("use_hg", "paper2"), ("recurrent", "paper1"),
                       ("generator", "paper1"))


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
    None when there is no flags.txt or it is none of these.

    The `# paper:` and `# stage:` lines (`common.cli.save_flags`) decide; a flags.txt without
    them (written before they existed) is recognised by its flags (`legacy_kind`)."""
    workdir = workdir_of(path)
    header = read_run_header(workdir)
    if header.get("paper") and header.get("stage"):
        return header["paper"], header["stage"]
    fl = read_flags_file(workdir)
    return None if fl is None else legacy_kind(fl)


def legacy_kind(fl: Mapping[str, str]) -> tuple[str, str] | None:
    """(paper, stage) of an old flags.txt ({flag: value}, `read_flags_file`) from the flags only
    one trainer defines; None when none of them is there."""
    if "ablation" in fl and "stage" in fl:
        return "paper3", fl["stage"]
    if "lambda_ci" in fl and "stage" in fl:
        return "paper2", fl["stage"]
    if "recurrent" in fl or "scale_weights" in fl:
        return "paper1", "srn"
    if "lambda_cycle" in fl:
        return "paper1", "cyclegan"
    return None


def workdir_paper(path: str) -> str | None:
    """The paper ("paper1", ...) that trained the workdir holding `path` (`workdir_kind`); for an
    old flags.txt whose stage cannot be told, the paper of a flag only it defines; else None."""
    kind = workdir_kind(path)
    if kind is not None:
        return kind[0]
    header = read_run_header(workdir_of(path))
    if header.get("paper"):
        return header["paper"]
    fl = read_flags_file(workdir_of(path)) or {}
    for name, paper in _LEGACY_PAPER_FLAGS:
        if name in fl:
            return paper
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
