"""Paper 1's shipped-weights path: the SRN's global residual, noise on stored training pairs,
`export` -> `.keras` -> `deblur`, and the shipped model itself
(paper1_cyclegan_srn/weights/srn_small.keras) on unseen strong motion blur."""
import numpy as np
import pytest
from keras import ops

from common import cli, image_io, inference, tfrecord
from paper1_cyclegan_srn import deblur, evaluate, export, inputs, srn, train_srn
from tests.strong_blur import check_shipped_model

CFG = "paper1_cyclegan_srn/configs/"


def test_global_residual_srn_starts_as_the_identity_and_round_trips_its_config():
    x = np.random.default_rng(0).random((2, 20, 28, 3)).astype(np.float32)
    model = srn.build_srn("tiny", global_residual=True)
    outs = model(x)
    assert [tuple(o.shape) for o in outs] == [(2, 5, 7, 3), (2, 10, 14, 3), (2, 20, 28, 3)]
    np.testing.assert_allclose(np.asarray(outs[-1]), x, atol=1e-6)
    assert srn.SRN.from_config(model.get_config()).global_residual
    plain = srn.build_srn("tiny")(x)[-1]  # the paper's SRN: a random image at init
    assert np.abs(np.asarray(plain) - x).mean() > 0.01
    assert srn.build_srn("small", image_size=16).count_params() < 10e6 / 4  # < 10 MB float32


def test_stored_pairs_get_noise_in_training_only(tmp_path):
    rng = np.random.default_rng(0)
    sharp = (rng.random((4, 32, 32, 3)) * 255).astype(np.uint8)
    path = str(tmp_path / "pairs-00000-of-00001.tfrecord")
    tfrecord.write_shard(path, [tfrecord.make_example(sharp=s, blurred=s) for s in sharp])
    clean = next(iter(inputs.paired_dataset(path, 4, 32, noise_sigma=0.0, seed=0)))
    noisy = next(iter(inputs.paired_dataset(path, 4, 32, noise_sigma=(0.02, 0.02), seed=0)))
    np.testing.assert_array_equal(clean["blurred"].numpy(), clean["sharp"].numpy())
    resid = noisy["blurred"].numpy() - noisy["sharp"].numpy()
    assert 0.015 < resid.std() < 0.025
    evals = next(iter(inputs.paired_dataset(path, 4, None, noise_sigma=0.02, training=False,
                                            repeat=False)))
    np.testing.assert_array_equal(evals["blurred"].numpy(), evals["sharp"].numpy())


@pytest.fixture(scope="module")
def residual_srn_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("p1_srn_res") / "srn")
    cfg = cli.parse_flags([train_srn.define_flags],
                                  ["prog", f"--flagfile={CFG}smoke_srn.flags", f"--workdir={d}",
                                   "--global_residual", "--noise_sigma=0.02",
                                   "--noise_sigma_min=0", "--num_steps=2"])
    train_srn.train_and_evaluate(d, cfg)
    return d


def test_export_keras_equals_the_workdir_and_deblur_reads_it(residual_srn_dir, tmp_path):
    paths = export.export(residual_srn_dir, str(tmp_path / "export"), serve_size=32)
    loaded = inference.load_keras(paths["keras"])
    assert isinstance(loaded, srn.SRNDeblurrer) and loaded.global_residual
    x = np.random.default_rng(1).random((2, 36, 44, 3)).astype(np.float32)
    ref = np.asarray(evaluate.load_model(residual_srn_dir)[1](x))
    np.testing.assert_allclose(np.asarray(loaded(x)), ref, atol=1e-5)
    served = inference.load_saved_model(paths["saved_model"])
    np.testing.assert_allclose(np.asarray(served(x[:, :32, :32])),
                               np.asarray(loaded(x[:, :32, :32])), atol=1e-5)
    photo = tmp_path / "in" / "p.png"
    image_io.write_image(str(photo), image_io.to_uint8(x[0]))
    outs = deblur.run(paths["keras"], [str(photo)], str(tmp_path / "out"))
    assert image_io.read_image(outs[0]).shape == (36, 44, 3)
    with pytest.raises(ValueError, match="not a paper 1 SRN"):
        deblur.load_model("paper3_umsn/weights/umsn_small.keras")
    with pytest.raises(ValueError, match="multiple of 16"):
        export.export(residual_srn_dir, str(tmp_path / "bad"), serve_size=40)


def test_keep_mean_colour_undoes_a_generators_colour_drift_not_its_blur():
    from paper1_cyclegan_srn import generate_pairs

    class DriftingBlur:  # a stand-in G in [-1, 1]: 3-tap horizontal box blur, then a colour cast
        def __call__(self, t, training=False):
            t = (t + ops.roll(t, 1, axis=2) + ops.roll(t, -1, axis=2)) / 3.0
            return t * 0.8 + np.array([0.2, -0.1, 0.0], np.float32)

    rng = np.random.default_rng(0)
    clear = (rng.random((2, 24, 24, 3)) * 200 + 20).astype(np.uint8)
    drifted = generate_pairs.blur_with_generator(DriftingBlur(), clear).astype(np.float64)
    kept = generate_pairs.blur_with_generator(DriftingBlur(), clear, keep_mean_colour=True)
    kept = kept.astype(np.float64)
    mean = lambda a: a.mean(axis=(1, 2))
    assert np.abs(mean(drifted) - mean(clear)).max() > 10  # the cast moved the means
    np.testing.assert_allclose(mean(kept), mean(clear), atol=0.6)  # back, up to 8-bit rounding
    # the blur (and the contrast change) stays: same image up to a per-channel offset
    np.testing.assert_allclose(kept - mean(kept)[:, None, None], drifted - mean(drifted)[:, None, None],
                               atol=1.0)


def test_keep_low_frequencies_undoes_a_generators_shading_drift_not_its_blur():
    """--keep_low_frequencies=S: the pair's content above scale S is the clear face's again (a
    shading ramp and contrast change G added are gone), its fine detail stays G's blur."""
    from scipy.ndimage import gaussian_filter  # pylint: disable=import-outside-toplevel
    from paper1_cyclegan_srn import generate_pairs

    ramp = np.linspace(-0.3, 0.3, 32, dtype=np.float32)[None, :, None, None]

    class ShadingBlur:  # a stand-in G in [-1, 1]: 3-tap box blur, contrast x0.8, a shading ramp
        def __call__(self, t, training=False):
            t = (t + ops.roll(t, 1, axis=2) + ops.roll(t, -1, axis=2)) / 3.0
            return t * 0.8 + ramp

    rng = np.random.default_rng(1)
    clear = gaussian_filter(rng.random((2, 32, 32, 3)) * 200 + 20, (0, 1, 1, 0)).astype(np.uint8)
    drifted = generate_pairs.blur_with_generator(ShadingBlur(), clear).astype(np.float64)
    kept = generate_pairs.blur_with_generator(ShadingBlur(), clear, keep_low_frequencies=3.0)
    kept = kept.astype(np.float64)
    low = lambda a: gaussian_filter(a, (0, 3, 3, 0), mode="reflect")  # noqa: E731
    rms = lambda a: float(np.sqrt((a ** 2).mean()))  # noqa: E731
    c = clear.astype(np.float64)
    assert rms(low(drifted) - low(c)) > 10  # the ramp and contrast moved the shading
    assert rms(low(kept) - low(c)) < 0.2 * rms(low(drifted) - low(c))
    # the fine scales (G's blur) are kept: same high-pass as G's output
    assert rms((kept - low(kept)) - (drifted - low(drifted))) < 0.15 * rms(drifted - low(drifted))
    assert rms(drifted - low(drifted)) > 3  # a real high-pass to compare


def test_shipped_model_restores_strong_blur_and_real_photos(tmp_path):
    """8 faces of the strong-blur test set (LFW test people, Levin et al.'s real camera-shake
    kernels, noise 0.01): PSNR and SSIM both go up; deblur uses it on a real photo."""
    check_shipped_model(deblur.load_model, deblur.run, "_srn", tmp_path, min_psnr_gain=0.2)


def test_deblur_without_checkpoint_or_shipped_weights_names_the_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(deblur, "SHIPPED", str(tmp_path / "weights" / "srn_small.keras"))
    with pytest.raises(FileNotFoundError, match="--checkpoint not given and the shipped model"):
        deblur.load_model(None)
