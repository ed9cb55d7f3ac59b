"""The shipped model (paper3_umsn/weights/umsn_small.keras): it restores unseen strong motion blur,
deblur uses it without --checkpoint, and the demo fine-tunes it by default."""
import os

from paper3_umsn import deblur, demo
from tests.strong_blur import check_shipped_model


def test_shipped_model_restores_strong_blur_and_real_photos(tmp_path):
    """8 faces of the strong-blur test set (LFW test people, Levin et al.'s real camera-shake
    kernels, noise 0.01): PSNR and SSIM both go up; deblur uses it on a real photo."""
    check_shipped_model(deblur.load_model, deblur.run, "_umsn", tmp_path, min_psnr_gain=0.5)


def test_demo_fine_tunes_the_shipped_model_by_default(tmp_path):
    (stage, cmd), = demo.stage_commands(str(tmp_path), 6.0, "data/sample/faces",
                                        "data/sample/masks", "data/sample/test_faces")
    assert stage == "umsn" and f"--init_model={demo.SHIPPED}" in cmd
    assert os.path.isfile(demo.SHIPPED) and "--max_train_minutes=6.000" in cmd
    scratch = demo.stage_commands(str(tmp_path), 6.0, "data/sample/faces", "data/sample/masks",
                                  "data/sample/test_faces", from_scratch=True)
    assert [s for s, _ in scratch] == ["sn_clean", "sn_blurry", "fnet", "umsn"]
    assert all("--crop_size=128" in c for _, c in scratch)
