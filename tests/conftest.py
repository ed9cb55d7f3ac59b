"""Fixtures shared by test folders."""
import pytest
import tensorflow as tf


@pytest.fixture
def eager_steps():
    """Runs tf.functions eagerly for the test: tracing paper-size graphs costs far more CPU than
    the one step a paper-settings test runs (README "Set up"); the same step functions are
    traced by the smoke tests of each paper."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)
