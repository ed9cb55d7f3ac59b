"""The shipped model (paper2_identity_cgan/weights/cgan_small.keras): it restores unseen strong
motion blur (LFW test people, Levin et al.'s real camera-shake kernels, noise 0.01: PSNR and SSIM
both go up), and deblur uses it without --checkpoint on a real photo."""
from paper2_identity_cgan import deblur
from tests.strong_blur import check_shipped_model


def test_shipped_model_restores_strong_blur_and_real_photos(tmp_path):
    check_shipped_model(deblur.load_model, deblur.run, "_cgan", tmp_path, min_psnr_gain=0.4)
