"""facedeblur: three face-deblurring papers on one shared `common` package.

Pick exactly one TensorFlow build with an extra (both install the same `tensorflow` module, so
never both):

    pip install -e ".[cpu,test,face,video]"   # CPU machine: tensorflow-cpu
    pip install -e ".[gpu,test,face]"   # NVIDIA GPU machine (Linux): tensorflow[and-cuda], CUDA from pip

`test` adds pytest, `face` the face-analysis backends (detection, landmarks, identity).
"""
from setuptools import find_packages, setup

# Versions tested together on Python 3.11 (CPU). TensorFlow itself comes from the `cpu` or `gpu`
# extra (below); everything else is shared.
INSTALL_REQUIRES = [
    "keras==3.15.1",
    "h5py==3.14.0",  # Keras' weight files; common.inference rewrites them (--weights_dtype)
    "tensorboard==2.21.0",  # tf.summary writers need it; tensorflow-cpu does not bring it
    "tensorflow-datasets==4.9.10",
    "importlib_resources==7.1.0",  # tfds 4.9.10 imports it but does not declare it
    "numpy==2.4.6",
    "pillow==13.0.0",
    "scikit-image==0.26.0",
    "scipy==1.17.1",
    "absl-py==2.5.1",
    "matplotlib==3.11.2",
    "tqdm==4.70.1",
]

TF_VERSION = "2.21.0"
# tensorflow-cpu: half the download, no CUDA probe. tensorflow[and-cuda]: the GPU build plus the
# CUDA/cuDNN wheels it was built against (Linux x86_64), so no system CUDA install is needed.
CPU_REQUIRES = [f"tensorflow-cpu=={TF_VERSION}"]
GPU_REQUIRES = [f"tensorflow[and-cuda]=={TF_VERSION}"]

# Face-analysis backends (common/face): models ship inside these wheels, nothing is downloaded.
FACE_REQUIRES = [
    # MTCNN detector, weights inside the wheel; it needs TensorFlow but declares it only in its
    # own `tensorflow` extra (not used here), so it brings no second TensorFlow.
    "mtcnn==1.0.0",
    "lz4==4.4.5",  # mtcnn reads its packed weights with lz4
    "opencv-python-headless==4.14.0.94",  # Haar cascades; OpenCV 5 dropped CascadeClassifier
    "dlib-bin==20.0.1.post1",  # prebuilt dlib wheel (imports as `dlib`); plain `dlib` compiles ~8 min
    # dlib's 68-point, 5-point and 128-D ResNet model files (sdist, ~100 MB, ~20 s to install);
    # common.face finds the files by path and never imports the package (it needs pkg_resources).
    "face_recognition_models==0.3.0",
]

# Apache Beam for cluster-scale TFDS builds (docs/data.md). Optional and not in CI: it caps
# protobuf < 7 and pillow < 13, below what the cpu/gpu extras resolve to (protobuf 7.36, pillow
# 13.0). tests/data/test_beam_build.py passed with Beam's pins (protobuf 6.33.6, pillow 12.3.0)
# over TensorFlow 2.21 in a side environment.
BEAM_REQUIRES = ["apache-beam==2.77.0"]

# Video in the `deblur` CLIs (common/video.py): imageio-ffmpeg ships its own ffmpeg binary
# (7.0.2 static, Linux/macOS/Windows wheels), so no system ffmpeg is needed.
VIDEO_REQUIRES = ["imageio==2.38.0", "imageio-ffmpeg==0.6.0"]

TEST_REQUIRES = [
    "pytest==9.2.0",
    # .ci/run: `pytest -n 2 --dist loadfile` (two worker processes; order in tests/conftest.py)
    "pytest-xdist==3.8.0",
    "execnet==2.1.2",  # xdist's process transport, pinned with it
]

# What a non-editable install ships besides the modules: READMEs, flagfiles and their run
# scripts, shipped weights with their model cards (`<paper>/weights/*`), and data/sample (the
# embedded sample faces, masks, test faces and real blurry photos the docs and demos use).
_PAPER_DATA = ["README.md", "*.sh", "configs/*.flags", "configs/*.sh", "weights/*"]
PACKAGE_DATA = {
    "data": ["README.md", "configs/*.flags", "sample/*.md", "sample/*/*"],
    "paper1_cyclegan_srn": _PAPER_DATA,
    "paper2_identity_cgan": _PAPER_DATA,
    "paper3_umsn": _PAPER_DATA,
}

setup(
    name="facedeblur",
    version="0.1.0",
    description="Reproductions of three face-deblurring papers in TensorFlow / Keras 3",
    # numpy 2.4.6 and scipy 1.17.1 have no Python 3.10 wheels; TensorFlow 2.21 none for 3.14.
    python_requires=">=3.11,<3.14",
    packages=find_packages(include=["common*", "data*", "paper1_cyclegan_srn*",
                                    "paper2_identity_cgan*", "paper3_umsn*"]),
    # Data files listed per package (not include_package_data, whose manifest scan installs
    # folders like data/sample/faces as undeclared packages, a setuptools deprecation warning).
    package_data=PACKAGE_DATA,
    install_requires=INSTALL_REQUIRES,
    extras_require={"cpu": CPU_REQUIRES, "gpu": GPU_REQUIRES, "test": TEST_REQUIRES,
                    "face": FACE_REQUIRES, "beam": BEAM_REQUIRES,
                    "video": VIDEO_REQUIRES},
)
