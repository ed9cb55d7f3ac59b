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
    the one step a paper-settings test runs (README "Set up"); the same step functions are
    traced by the smoke tests of each paper."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


# ------------------------------------------------------------------- parallel runs (xdist) ----
# CI runs `pytest -n 2 --dist loadgroup` (.ci/run): every test goes to a worker with the other
# tests of its module (module-scoped fixtures are built once), all users of paper 3's
# session-scoped smoke run (`stages`, tests/paper3_umsn/conftest.py) share one worker, and the
# longest units (the paper-settings tests, then that group) are handed out first, so neither
# worker is left with a long test at the end. Without xdist the marks do nothing.
SHARED_SESSION_FIXTURES = {"stages": "paper3_umsn_stages"}


def _group(item):
    for fixture, group in SHARED_SESSION_FIXTURES.items():
        if fixture in getattr(item, "fixturenames", ()):
            return group
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(config, items):
    del config
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))

    def rank(item):
        if item.get_closest_marker("paper_settings"):
            return 0
        return 1 if _group(item) in SHARED_SESSION_FIXTURES.values() else 2
    items.sort(key=rank)  # stable: the order within each rank is kept
