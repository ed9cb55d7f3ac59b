"""--vgg16_weights: the perceptual loss's relu1_2 features load a Keras VGG16 weights file
(the paper's L_p, Eq. 5). No ImageNet weights ship offline, so the file is written here from an
untrained keras.applications.VGG16 with the same layer names."""
import keras
import numpy as np

from paper3_umsn import losses


def test_vgg16_weights_file_loads_into_relu12_and_features_match_keras_vgg16(tmp_path):
  full = keras.applications.VGG16(include_top=False, weights=None)
  path = str(tmp_path / "vgg16.weights.h5")
  full.save_weights(path)
  vgg = losses.load_vgg16_relu12(path)
  for mine, name in ((vgg.conv1, "block1_conv1"), (vgg.conv2, "block1_conv2")):
    for a, b in zip(mine.get_weights(), full.get_layer(name).get_weights()):
      np.testing.assert_array_equal(a, b)
  x = np.random.default_rng(0).random((1, 16, 16, 3)).astype(np.float32)
  # Keras VGG16 input: Caffe-style BGR 0..255 minus the ImageNet mean (what Vgg16Relu12 does)
  caffe = keras.applications.vgg16.preprocess_input(x * 255.0)
  want = keras.Model(full.input, full.get_layer("block1_conv2").output)(caffe)
  np.testing.assert_allclose(np.asarray(vgg(x)), np.asarray(want), rtol=1e-4, atol=1e-3)
