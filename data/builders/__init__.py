"""TensorFlow Datasets builders (manual download only) for the papers' datasets.

Each module holds a `tfds.core.GeneratorBasedBuilder` plus `check_layout()` and `generate()`;
`data.builders._layout.prepare(builder_cls, manual_dir, data_dir)` builds one without network.
"""
from data.builders._layout import LayoutError, prepare  # noqa: F401

