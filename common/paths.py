"""Where the repository and the project's shared test data are.

`SHARED_DATA` is the folder of real faces, kernels and face sequences used by tests, smoke runs and
benchmarks: `$FACEDEBLUR_SHARED_DATA` if set, else `../shared/data` beside the repository (the
layout CI and the development machines have). Paper datasets are never looked up here: they
always come from a flag.
"""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("FACEDEBLUR_SHARED_DATA",
                             os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data")))
