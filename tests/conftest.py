"""Fixtures shared by test folders."""
import pytest
import tensorflow as tf


@pytest.fixture(autouse=True)
def _keep_global_precision():
    """Restores Keras' global dtype policy after each test: a trainer sets it from its flags
    (e.g. --mixed_precision=auto -> mixed_bfloat16 on a CPU), which must not leak into the
    next test whatever the order (xdist, tests/conftest.py's ordering)."""
    import keras  # pylint: disable=import-outside-toplevel
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.fixture
def eager_steps():
    """Runs tf.functions eagerly for the test: tracing paper-size graphs costs far more CPU than
    the one step a paper-settings test runs (docs/setup.md); the same step functions are
    traced by the smoke tests of each paper."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


# ------------------------------------------------------------------- parallel runs (xdist) ----
# CI runs `pytest -n 2 --dist loadfile` (.ci/run): each module's tests run on one worker (its
# module-scoped fixtures are built once), and the longest modules are handed out first (the
# paper-settings tests, then the users of paper 3's session-scoped smoke run `stages`), so no
# worker is left with a long test at the end. (`--dist loadgroup` could also keep the `stages`
# users on one worker, but xdist 3.8 cannot tag pytest 9.2 items with a group: it sets
# `item._nodeid`, which pytest 9 no longer reads, so the groups are silently ignored.)
PAPER3_STAGES_FIXTURE = "stages"  # tests/paper3_umsn/conftest.py


def pytest_collection_modifyitems(config, items):
    del config

    def rank(item):
        if item.get_closest_marker("paper_settings"):
            return 0
        return 1 if PAPER3_STAGES_FIXTURE in getattr(item, "fixturenames", ()) else 2
    items.sort(key=rank)  # stable: the order within each rank is kept
