"""The registry of paper packages: which papers there are, and what evaluation needs of each.

Each paper package has a `spec.py` holding one `PaperSpec` (`SPEC`): its short name ("paper1"),
package, training stages, the stride its whole models need (inputs padded to a multiple of it),
the modules that register its Keras classes, and `load_model` / `load_method`. `get(name)` imports
that spec module only when asked (the static table below names them), so `common` imports no
paper package at module import time, and no paper imports another.

Which paper trained a workdir is read from its flags.txt (`common.train.workdirs.workdir_paper`:
the `# paper:` line trainers write, or for older workdirs a flag only that paper defines);
`of_workdir(path)` returns that paper's spec.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

from common.train import workdirs

# short name -> package; each package's spec module is PACKAGE.spec.
PACKAGES = {"paper1": "paper1_cyclegan_srn", "paper2": "paper2_identity_cgan",
            "paper3": "paper3_umsn"}


@dataclasses.dataclass(frozen=True)
class PaperSpec:
    """What the shared code needs to know of one paper package.

    name: short name ("paper1"), as in flags.txt's `# paper:` line and method specs (paper1:DIR).
    package: the Python package ("paper1_cyclegan_srn").
    stages: the training stages (flags.txt's `# stage:` line), in training order.
    stride: its whole models take H, W multiples of this (inputs are reflect-padded to it).
    keras_modules: modules to import before loading one of its `.keras` files (they register its
      custom Keras classes).
    load_model(workdir_or_file): a trained workdir or an exported `.keras` file (the paper's
      `deblur.load_model`) -> a function float32 [B,H,W,3] in [0,1] -> the same.
    load_method(workdir): a trained workdir -> `common.evaluation.methods.Method` (the paper's
      `evaluate.load_method`).
    """
    name: str
    package: str
    stages: tuple[str, ...]
    stride: int
    keras_modules: tuple[str, ...]
    load_model: Callable
    load_method: Callable

    def register_keras(self) -> None:
        """Imports `keras_modules`, so Keras can rebuild this paper's saved classes."""
        for module in self.keras_modules:
            importlib.import_module(module)


def names() -> tuple[str, ...]:
    """The short names of every paper ("paper1", "paper2", "paper3")."""
    return tuple(PACKAGES)


def get(name: str) -> PaperSpec:
    """The spec of paper `name` ("paper1", or its package name); imports its spec module."""
    package = PACKAGES.get(name, name)
    if package not in PACKAGES.values():
        raise ValueError(f"unknown paper {name!r}; choose one of {sorted(PACKAGES)}")
    spec = importlib.import_module(package + ".spec").SPEC
    if spec.name != name and spec.package != name:  # the table and the spec disagree
        raise RuntimeError(f"{package}.spec.SPEC is named {spec.name!r}, not {name!r}")
    return spec


def for_package(package: str | None) -> PaperSpec | None:
    """The spec of a package name ("paper3_umsn"), or None for anything else."""
    return get(package) if package in PACKAGES.values() else None


def all_specs() -> list[PaperSpec]:
    """Every paper's spec (imports every spec module, none of the papers' networks)."""
    return [get(name) for name in PACKAGES]


def of_workdir(path: str) -> PaperSpec | None:
    """The spec of the paper that trained the workdir holding `path` (its flags.txt), or None."""
    name = workdirs.workdir_paper(path)
    return get(name) if name in PACKAGES else None
