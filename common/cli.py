"""What every command-line program of this project shares; imports no training code.

* `parse_flags(define_fns, argv)` / `flags_parser`: parse argv after expanding `--flagfile=`
  arguments (`expand_flagfiles`); a relative flagfile path is tried against the working
  directory, the including flagfile's directory and the repository root, and so are relative
  data paths inside a flagfile, so shipped flagfiles work from any working directory. A bad flag
  or value is absl's one `FATAL Flags parsing error` line and exit status 1.
* `run_app(main, required)`: every CLI's `__main__` (absl `app.run`, `--help` listing the common
  flags: `adopt_key_flags`); `run_main(train_and_evaluate, define_flags)`: a trainer's whole
  `__main__` (it imports the training flags only when called).
* `save_flags` / `load_flags`: the resolved flags beside the checkpoints (`workdir/flags.txt`, a
  flagfile), so evaluation rebuilds the exact network that was trained; `save_flags` also writes
  `# paper: NAME` and `# stage: STAGE` comment lines (absl skips `#` lines), read back by
  `read_run_header`; `read_flags_file`: {flag: value} of a flags.txt.

The training flags themselves (`--workdir`, `--strategy`, ...) are defined by
`common.train.flags.define_common_flags`; the flags of the inference CLIs by `common.inference`
and `common.shared_flags`.
"""
from __future__ import annotations

import glob
import os
import sys
from typing import Callable, Iterable, Sequence

from absl import flags

from common import image_io
from common.paths import REPO_ROOT

FLAGS_FILENAME = "flags.txt"
# The comment lines of flags.txt that say which paper and stage trained a workdir.
RUN_HEADER_KEYS = ("paper", "stage")


def _resolve_flagfile(path: str, including_dir: str | None) -> str:
    candidates = [path]
    if not os.path.isabs(path):
        if including_dir:
            candidates.append(os.path.join(including_dir, path))
        candidates.append(os.path.join(REPO_ROOT, path))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise FileNotFoundError(
        f"flagfile {path!r} not found (tried: {', '.join(candidates)}). Pass a path relative to "
        f"the working directory or to the repository root {REPO_ROOT}.")


def _exists(path: str) -> bool:
    return bool(glob.glob(path)) if glob.has_magic(path) else os.path.exists(path)


def _resolve_value_path(part: str, flagfile_dir: str) -> str:
    """A relative path (or glob) of a flagfile value: kept if it exists from the working
    directory, else made absolute against the flagfile's folder or the repository root when it
    exists there (first match); anything else is kept as written."""
    if not part or os.path.isabs(part) or "://" in part or _exists(part):
        return part
    if not (os.sep in part or "/" in part or part.startswith(".")):
        return part  # a bare word (an enum value, a number, a generator name), not a path
    for base in (flagfile_dir, REPO_ROOT):
        candidate = os.path.normpath(os.path.join(base, part))
        if _exists(candidate):
            return candidate
    return part


def _resolve_line_paths(line: str, flagfile_dir: str) -> str:
    """`--name=a,b` from a flagfile with each existing relative path resolved (see
    `_resolve_value_path`), so a shipped flagfile works from any working directory."""
    if not line.startswith("--") or "=" not in line or line.startswith("--flagfile="):
        return line
    name, value = line.split("=", 1)
    return name + "=" + ",".join(_resolve_value_path(p, flagfile_dir) for p in value.split(","))


def expand_flagfiles(argv: Sequence[str], _including_dir: str | None = None,
                     _depth: int = 0) -> list[str]:
    """Returns argv with every `--flagfile=PATH` replaced by the flags it holds (recursively).

    Follows absl's flagfile format: one flag per line; blank lines and whole lines starting with `#`
    or `//` are skipped. Later flags override earlier ones, as with absl. A relative path inside
    a flagfile (a data folder, a kernel bank, a glob) that does not exist from the working
    directory is resolved against the flagfile's folder, then the repository root, so shipped
    flagfiles run from any working directory.
    """
    if _depth > 10:
        raise ValueError("flagfiles nest more than 10 deep: is one including itself?")
    out: list[str] = []
    for arg in argv:
        if arg.startswith("--flagfile="):
            path = _resolve_flagfile(arg.split("=", 1)[1], _including_dir)
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
            lines = [line for line in lines
                     if line and not line.startswith("#") and not line.startswith("//")]
            lines = [_resolve_line_paths(line, os.path.dirname(path)) for line in lines]
            out.extend(expand_flagfiles(lines, os.path.dirname(path), _depth + 1))
        else:
            out.append(arg)
    return out


def parse_flags(define_fns: Iterable[Callable[[flags.FlagValues], None]], argv: Sequence[str],
                fv: flags.FlagValues | None = None) -> flags.FlagValues:
    """Defines flags with each of `define_fns` on a fresh `FlagValues` (or `fv`) and parses argv.

    `argv[0]` is the program name, as with absl. Example::

        fv = parse_flags([train_flags.define_common_flags, train.define_flags],
                         ["prog", "--flagfile=paper3_umsn/configs/smoke.flags", "--workdir=/tmp/x"])
    """
    fv = flags.FlagValues() if fv is None else fv
    for define in define_fns:
        define(fv)
    fv(expand_flagfiles(list(argv)))
    return fv


def flags_parser(argv: Sequence[str]) -> list[str]:
    """`absl.app.run(main, flags_parser=flags_parser)`: absl's parser (a bad flag or value is one
    `FATAL Flags parsing error: ...` line and exit status 1) after expanding flagfiles (see
    `expand_flagfiles`); a flagfile that cannot be read fails the same way."""
    from absl import app  # pylint: disable=import-outside-toplevel
    try:
        argv = expand_flagfiles(list(argv))
    except (OSError, ValueError) as e:
        sys.stderr.write(f"FATAL Flags parsing error: {e}\n"
                         "Pass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(1)
    return app.parse_flags_with_usage(argv)


def adopt_key_flags(fv: flags.FlagValues = flags.FLAGS,
                    modules: Sequence[str] = ("common.train.flags", "common.shared_flags",
                                               "common.inference")) -> None:
    """Lists the flags defined in `modules` (the common flags) in the main program's `--help`,
    beside its own (absl shows only the main module's key flags)."""
    main = sys.argv[0]
    for module in modules:
        for flag in fv.get_key_flags_for_module(module):
            fv.register_key_flag_for_module(main, flag)


def run_app(main: Callable[[list], object], required: Sequence[str] = ()) -> None:
    """Every CLI's `if __name__ == "__main__":`: marks `required` flags, adds the common flags to
    `--help` (`adopt_key_flags`) and runs `main` through `absl.app.run` with `flags_parser`."""
    from absl import app  # pylint: disable=import-outside-toplevel
    if required:
        flags.mark_flags_as_required(list(required))
    adopt_key_flags()
    app.run(main, flags_parser=flags_parser)


def run_main(train_and_evaluate: Callable[[str, flags.FlagValues], object],
             define_flags: Callable[[flags.FlagValues], None]) -> None:
    """A trainer's `if __name__ == "__main__":` block.

    Defines the common flags and the trainer's (`define_flags`) on the global FLAGS, marks
    `--workdir` required, parses sys.argv through `run_app` and calls
    `train_and_evaluate(workdir, FLAGS)` (which saves the resolved flags itself). Like `app.run`,
    exits the process when done. The training modules are imported here, when a trainer runs,
    not when this module is.
    """
    # pylint: disable=import-outside-toplevel
    from common import workdir_lock
    from common.train.errors import CheckpointError, NonFiniteLossError, TrainingInterrupted
    from common.train.flags import define_common_flags
    define_common_flags(flags.FLAGS)
    define_flags(flags.FLAGS)

    def main(argv):
        del argv
        try:
            train_and_evaluate(flags.FLAGS.workdir, flags.FLAGS)
        except TrainingInterrupted as e:  # checkpoint saved: exit like a signalled process would
            sys.stderr.write(f"{e}\n")
            sys.exit(128 + e.signum)
        except (ValueError, FileNotFoundError, NonFiniteLossError, CheckpointError,
                workdir_lock.LockError) as e:
            # bad input or a stopped run: one line that says what to do, no traceback
            sys.stderr.write(f"error: {e}\n")
            sys.exit(1)

    run_app(main, required=("workdir",))


PROJECT_MODULES = ("__main__", "common", "data", "paper1_cyclegan_srn", "paper2_identity_cgan",
                   "paper3_umsn", "tests", "benchmarks")


def own_flags(fv: flags.FlagValues) -> list:
    """The flags defined by this project's modules, sorted by name.

    The global FLAGS also hold absl's logging flags and flags other libraries define on import
    (TensorFlow's `--delta_threshold`, ...): those are left out, so `flags.txt` parses again on a
    FlagValues that only has the trainer's flags.
    """
    own = {}
    for module, module_flags in fv.flags_by_module_dict().items():
        # absl files `__main__`'s flags under sys.argv[0]: under `python -m pkg.train` that is the
        # script's path, so a path inside the repository counts as ours too.
        in_repo = os.path.isabs(module) and os.path.abspath(module).startswith(REPO_ROOT + os.sep)
        if module.split(".")[0] not in PROJECT_MODULES and not in_repo:
            continue
        for flag in module_flags:
            own[flag.name] = flag
    return [own[name] for name in sorted(own)]


def save_flags(fv: flags.FlagValues, workdir: str, *, paper: str | None = None,
               stage: str | None = None) -> str:
    """Writes the resolved flags to `workdir/flags.txt` (a flagfile) and returns its path.

    `paper` / `stage` (the names of `common.papers`, e.g. "paper1", "srn") go into `# paper: NAME`
    and `# stage: STAGE` comment lines after the first, which flagfile parsers skip and
    `read_run_header` (so `common.train.workdirs.workdir_kind`) reads."""
    os.makedirs(workdir, exist_ok=True)
    lines = [f.serialize() for f in own_flags(fv) if f.value is not None]
    path = os.path.join(workdir, FLAGS_FILENAME)
    header = ["# Resolved flags of this run (a flagfile: --flagfile=" + path + ")"]
    for key, value in zip(RUN_HEADER_KEYS, (paper, stage)):
        if value:
            header.append(f"# {key}: {value}")
    image_io.atomic_write(path, "\n".join(header) + "\n"
                          + "\n".join(line for line in lines if line) + "\n")
    return path


def load_flags(define_fns: Iterable[Callable[[flags.FlagValues], None]], workdir: str,
               overrides: Sequence[str] = ()) -> flags.FlagValues:
    """Rebuilds the FlagValues a run was trained with from `workdir/flags.txt` (+ overrides)."""
    path = os.path.join(workdir, FLAGS_FILENAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: --workdir must be a training workdir (it holds flags.txt and "
            f"checkpoints/).")
    return parse_flags(define_fns, ["prog", f"--flagfile={path}", *overrides])


def read_flags_file(workdir: str) -> dict[str, str] | None:
    """{flag name: value string} of `workdir/flags.txt` (booleans as "true"/"false"), or None."""
    path = os.path.join(workdir, FLAGS_FILENAME)
    if not os.path.isfile(path):
        return None
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name, eq, value = line[2:].partition("=")
            if eq:
                out[name] = value
            elif name.startswith("no"):
                out[name[2:]] = "false"
            else:
                out[name] = "true"
    return out


def read_run_header(workdir: str) -> dict[str, str]:
    """{"paper": NAME, "stage": STAGE} from the `# paper:` / `# stage:` lines of
    `workdir/flags.txt` (`save_flags`); {} when there is no flags.txt or it has no such lines
    (a workdir written before they existed)."""
    path = os.path.join(workdir, FLAGS_FILENAME)
    if not os.path.isfile(path):
        return {}
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("#"):
                continue
            key, colon, value = line[1:].strip().partition(":")
            if colon and key.strip() in RUN_HEADER_KEYS and value.strip():
                out.setdefault(key.strip(), value.strip())
    return out
