"""Dataset builders (TensorFlow Datasets, manual download) and `python -m data.build`,
which turns them into the common TFRecord schema."""
