"""The first faces of the strong-blur test set (data/configs/lfw_strong_blur_test.flags), built by
the committed flagfile, and the PSNR/SSIM gain of a shipped model on them (tests of shipped weights)."""
import os

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common import image_io
from common.paths import SHARED_DATA
from tests.data.test_build import run as build_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def strong_blur_faces(out_dir, num=8):
    """(sharp, blurred) uint8 [num, 128, 128, 3]: LFW test people, Levin et al.'s real
    camera-shake kernels, noise 0.01."""
    build_run([f"--flagfile={os.path.join(REPO, 'data', 'configs', 'lfw_strong_blur_test.flags')}",
               f"--manual_dir={os.path.join(SHARED_DATA, 'lfw')}", f"--output_dir={out_dir}",
               f"--blur_kernels={os.path.join(SHARED_DATA, 'kernels', 'levin09.npz')}",
               f"--exclude_identities={os.path.join(REPO, 'data', 'sample', 'faces')}",
               f"--max_items={num}", "--num_shards=1"])
    names = sorted(os.listdir(os.path.join(out_dir, "sharp")))
    load = lambda kind: np.stack([image_io.read_image(os.path.join(out_dir, kind, n)) for n in names])
    return load("sharp"), load("blurred")


def gains(model, sharp, blurred):
    """Mean (PSNR gain dB, SSIM gain) of ``model`` ([0,1] float -> [0,1]) over the input,
    scored with scikit-image on uint8 images."""
    restored = image_io.to_uint8(np.asarray(model(image_io.to_float32(blurred))))
    psnr = np.mean([peak_signal_noise_ratio(s, r) - peak_signal_noise_ratio(s, b)
                    for s, b, r in zip(sharp, blurred, restored)])
    ssim = np.mean([structural_similarity(s, r, channel_axis=2) -
                    structural_similarity(s, b, channel_axis=2)
                    for s, b, r in zip(sharp, blurred, restored)])
    return float(psnr), float(ssim)


def check_shipped_model(load_model, run, suffix, tmp_path, min_psnr_gain, min_ssim_gain=0.005):
    """What every shipped model must do: restore 8 strong-blur test faces better than the blurred
    input (PSNR and SSIM), and deblur a real photo without --checkpoint at the photo's size."""
    sharp, blurred = strong_blur_faces(str(tmp_path / "strong"))
    gain_psnr, gain_ssim = gains(load_model(None), sharp, blurred)
    assert gain_psnr > min_psnr_gain and gain_ssim > min_ssim_gain, (gain_psnr, gain_ssim)
    photo = os.path.join(REPO, "data", "sample", "real_blurry", "face_01.png")
    outs = run(None, [photo], str(tmp_path / "out"))
    assert len(outs) == 1 and outs[0].endswith(f"face_01{suffix}.png")
    assert image_io.read_image(outs[0]).shape == image_io.read_image(photo).shape
