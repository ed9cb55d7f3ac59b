"""Shared code for the three facedeblur paper packages: image I/O, blur synthesis,
metrics, the TFRecord schema and tf.data pipeline, training utilities and face analysis.

`common` imports no paper package."""
