"""Dataset builders (TensorFlow Datasets, manual download) and `python -m data.build`,
which turns them into the common TFRecord schema.

  data.builders      one TFDS builder + `generate()` per dataset (celeba, helen_parsing,
                     shen_blurred_faces, face_videos, unpaired_blur, gopro, lfw)
  data.build         records: kernel-blurred, frame-averaged (PrAvg/VLA), paired, unpaired
  data.synth_video   simulated face clips from stills (a simulation, see data/README.md)
  data/sample/       the embedded sample used by smoke configs
"""
