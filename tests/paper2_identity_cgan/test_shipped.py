"""The shipped model (paper2_identity_cgan/weights/cgan_small.keras): it restores unseen strong
motion blur, and deblur uses it without --checkpoint."""
import os

from common import image_io
from paper2_identity_cgan import deblur
from tests.strong_blur import gains, strong_blur_faces

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_shipped_model_restores_strong_blur_better_than_the_input(tmp_path):
    """8 faces of the strong-blur test set (LFW test people, Levin et al.'s real camera-shake
    kernels, noise 0.01), built by the committed flagfile: PSNR and SSIM both go up."""
    sharp, blurred = strong_blur_faces(str(tmp_path / "strong"))
    gain_psnr, gain_ssim = gains(deblur.load_model(None), sharp, blurred)
    assert gain_psnr > 0.1 and gain_ssim > 0.005, (gain_psnr, gain_ssim)


def test_deblur_cli_uses_the_shipped_model_on_a_real_photo(tmp_path):
    photo = os.path.join(REPO, "data", "sample", "real_blurry", "face_01.png")
    outs = deblur.run(None, [photo], str(tmp_path / "out"))
    assert len(outs) == 1 and outs[0].endswith("face_01_cgan.png")
    assert image_io.read_image(outs[0]).shape == image_io.read_image(photo).shape
