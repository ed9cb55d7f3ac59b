"""Issue 16 probes on paper 3: the lr=1e6 run stops without saving broken weights, a wrong
--init_fnets / --init_sn is an error naming what the workdir holds, a wrong-kind --checkpoint is
named as such, and --crop larger than the images fails before the workdir exists."""
import glob
import os
import shutil

from absl import app, flags
import numpy as np
import pytest
import tensorflow as tf

from common import inference
from common.train import loop
from paper3_umsn import deblur, train

from tests.paper3_umsn.conftest import _config


def _finite(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return all(np.all(np.isfinite(reader.get_tensor(n)))
               for n, d in reader.get_variable_to_dtype_map().items() if d.is_floating)


def test_exploding_learning_rate_stops_naming_the_last_finite_checkpoint(tmp_path):
    """The issue's probe (sn_clean, --learning_rate=1e6, a checkpoint every step): it stopped at
    step 4 naming ckpt-3, which held 240 non-finite tensors."""
    workdir = str(tmp_path / "w")
    # --nofused_norm: the probe ran Keras's instance norm, whose float32 statistics
    # overflow at this rate; the fused kernel's stay finite for the 60 steps
    config = _config(workdir, "--stage=sn_clean", "--num_steps=60", "--checkpoint_every=1",
                     "--eval_every=0", "--image_every=0", "--learning_rate=1e6",
                     "--nofused_norm")
    tf.config.run_functions_eagerly(True)  # three small steps: cheaper than tracing
    try:
        with pytest.raises(loop.NonFiniteLossError) as e:
            train.train_and_evaluate(workdir, config)
    finally:
        tf.config.run_functions_eagerly(False)
    prefixes = sorted(p[:-len(".index")] for p in glob.glob(os.path.join(workdir, "checkpoints",
                                                                          "*.index")))
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    assert prefixes and latest in str(e.value) and "last finite checkpoint" in str(e.value)
    assert all(_finite(p) for p in prefixes)


def test_init_from_the_wrong_workdir_is_an_error(stages, tmp_path):
    def umsn_stage(init_fnets, init_sn=stages["sn_blurry"]):
        config = _config(str(tmp_path / "u"), "--stage=umsn", f"--init_sn={init_sn}",
                         f"--init_fnets={init_fnets}")
        return train.make_stage(config, tf.distribute.get_strategy())
    # an sn_clean workdir as --init_fnets: F-Nets silently random before (0 of 33 restored)
    with pytest.raises(ValueError, match=r"^--init_fnets=\S+ is a paper-3 sn_clean workdir, not a "
                                         r"paper-3 fnet one"):
        umsn_stage(stages["sn_clean"])
    # a paper-1 workdir (fails at the first restore, --init_sn, before UMSN is built)
    p1 = tmp_path / "p1"
    p1.mkdir()
    (p1 / "flags.txt").write_text("--recurrent=lstm\n--scale_weights=1,1,1\n")
    # checkpoints without flags.txt: the restore itself finds the F-Nets missing
    bare = str(tmp_path / "bare")
    shutil.copytree(os.path.join(stages["sn_clean"], "checkpoints"), bare)
    with pytest.raises(ValueError, match=r"^--init_fnets=\S+: \S+ckpt-1 does not hold fnet1, "
                                         r"fnet2, fnet3, fnet4 \("):
        umsn_stage(bare)
    with pytest.raises(ValueError, match=r"^--init_sn=\S+ is a paper-1 SRN workdir"):
        umsn_stage(stages["fnet"], init_sn=str(p1))


def test_deblur_with_a_wrong_kind_checkpoint_names_it(tmp_path):
    p1 = tmp_path / "p1"
    p1.mkdir()
    (p1 / "flags.txt").write_text("--recurrent=lstm\n--scale_weights=1,1,1\n")
    fv = flags.FlagValues()
    deblur.define_flags(fv)
    fv(["prog", f"--checkpoint={p1}", f"--output_dir={tmp_path / 'o'}"])
    with pytest.raises(app.UsageError, match=r"is a paper-1 SRN workdir, not a paper-3 umsn one"):
        inference.deblur_main(["prog", str(tmp_path)], deblur.run, fv)


def test_crop_larger_than_the_images_fails_before_the_workdir_exists(tmp_path):
    workdir = str(tmp_path / "w")
    config = _config(workdir, "--stage=sn_clean", "--crop_size=512")
    with pytest.raises(ValueError, match=r"^--crop_size=512 is larger than the images of --train_data="):
        train.train_and_evaluate(workdir, config)
    assert not os.path.exists(workdir)
