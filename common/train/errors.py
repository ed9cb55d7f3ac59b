"""The errors a training run stops with (one line that says what to do; `common.cli.run_main`
prints them without a traceback). No TensorFlow here, so a CLI can catch them cheaply."""
from __future__ import annotations

import signal


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be resumed safely; the message names the files and the fix."""


class NonFiniteLossError(RuntimeError):
    """A loss or a weight became NaN or infinite; the message names the step and the last finite
    checkpoint."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT arrived; a checkpoint was saved (`run_main` exits with 128 + signum)."""

    def __init__(self, signum: int, step: int, path: str | None):
        self.signum, self.step, self.path = signum, step, path
        super().__init__(f"{signal.Signals(signum).name} at step {step}: saved {path}; rerun the "
                         f"same command to resume.")
