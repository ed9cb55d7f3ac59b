"""Every committed flagfile (`*/configs/*.flags`, `data/configs/*.flags`) parses with the flags of
an entry point it is written for, and its values that are checked only when a run starts
(--resize, --kernel_sizes, --scale_weights) are valid: a recipe must not fail minutes in."""
import glob
import importlib
import os

import pytest
from absl import flags

from common import cli, shared_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = {  # package -> modules with define_flags
    "paper1_cyclegan_srn": ("train_cyclegan", "train_srn", "generate_pairs", "prepare_unpaired",
                            "evaluate"),
    "paper2_identity_cgan": ("train", "evaluate", "data"),
    "paper3_umsn": ("train", "evaluate"),
    "data": ("build",),
}
REQUIRED = {"data": ("--manual_dir=MANUAL_DIR", "--output_dir=OUTPUT_DIR")}  # given on the command line
FLAGFILES = sorted(glob.glob(os.path.join(REPO, "*", "configs", "*.flags")))


def _parse(module, path, extra=()):
    fv = flags.FlagValues()
    cli.parse_flags([module.define_flags], ["prog", f"--flagfile={path}", *extra], fv=fv)
    return fv


@pytest.mark.parametrize("path", FLAGFILES, ids=lambda p: os.path.relpath(p, REPO))
def test_committed_flagfile_parses_and_its_values_are_valid(path):
    package = os.path.relpath(path, REPO).split(os.sep)[0]
    assert package in ENTRY_POINTS, f"{path}: no entry point listed for package {package}"
    errors, fv = [], None
    for name in ENTRY_POINTS[package]:
        module = importlib.import_module(f"{package}.{name}")
        try:
            fv = _parse(module, path, REQUIRED.get(package, ()))
            break
        except (flags.Error, ValueError) as e:
            errors.append(f"{name}: {e}")
    assert fv is not None, f"{path} parses with no entry point of {package}:\n" + "\n".join(errors)
    if "resize" in fv:
        shared_flags.parse_resize(fv.resize)
    if "kernel_sizes" in fv and fv.kernel_sizes:
        shared_flags.parse_kernel_sizes(fv.kernel_sizes)
    if "scale_weights" in fv and fv.scale_weights:
        shared_flags.parse_floats(fv.scale_weights)


def test_a_bad_resize_in_a_flagfile_is_caught(tmp_path):
    bad = tmp_path / "bad.flags"
    bad.write_text("--resize=0\n")
    from paper2_identity_cgan import train
    fv = _parse(train, str(bad))
    with pytest.raises(ValueError, match="--resize"):
        shared_flags.parse_resize(fv.resize)
