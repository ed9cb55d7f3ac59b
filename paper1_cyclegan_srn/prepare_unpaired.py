"""Stage 0 (data): the unpaired clear / blurred face sets stage 1 trains on.

The paper's stage 1 learns from 1,500 real clear and blurred phone photos (Sec. 6.1, Fig. 5), which
are not public. Stand-in used here: two DISJOINT ranges of a face folder (e.g. CelebA aligned),
one kept clear (domain X) and one convolved with real camera-shake kernels (domain Y; Levin et
al.'s 8 measured kernels by default) plus optional noise, stored as 8-bit images. Each blurred
image gets one kernel, drawn with a seeded RNG, recorded in the `kernel` field.

    python -m paper1_cyclegan_srn.prepare_unpaired --faces=../shared/data/celeba_small/img_align_celeba \
        --clear_range=0:2000 --blurred_range=2000:4000 \
        --blur_kernels=../shared/data/kernels/levin09.npz --output_dir=records/p1/unpaired

Writes `clear-0000N-of-0000M.tfrecord` (image/sharp, source) and `blurred-...` (image/blurred,
kernel, source) atomically with `common.tfrecord.ShardedWriter`; existing outputs are kept.
`unpaired.json` records the counts and domain Y's blur strength, `blurred_psnr_mean`: the mean
PSNR of each stored blurred face against its clear source (compare generate_pairs' `pair_psnr_mean`:
how strongly the trained G blurs, against how strongly Y is blurred).

`--gopro=DIR` instead (Table 1's "Yuan et al." row: a CycleGAN on unpaired GoPro, as Yuan et al.
trained on a shuffled GoPro): GOPRO_Large's `--gopro_split` (read by `data.builders.gopro`, the one
GoPro reader) is split by SEQUENCE, alternating in sorted order: the sharp frames of sequences
0, 2, 4, ... are domain X, the blurred frames of sequences 1, 3, 5, ... domain Y, so no scene is
in both domains. Frames are stored as released (1280x720), never re-blurred.

    python -m paper1_cyclegan_srn.prepare_unpaired --gopro=GOPRO_Large --output_dir=records/gopro_unpaired
"""
from __future__ import annotations

import json
import os
import sys

from absl import flags, logging
import numpy as np
import tensorflow as tf

from common import blur, cli, image_io, metrics, shared_flags, tfrecord


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    if "faces" in fv:
        return
    d = dict(flag_values=fv)
    flags.DEFINE_string("faces", None, "Folder of clear face images.", **d)
    flags.DEFINE_string("gopro", None, "Instead of --faces: a GOPRO_Large folder (train/ and "
                        "test/ of <seq>/blur|sharp/); X = sharp frames of the even sequences, "
                        "Y = blurred frames of the odd ones (sorted order).", **d)
    flags.DEFINE_string("gopro_split", "train", "GoPro split for --gopro.", **d)
    flags.DEFINE_string("clear_range", "0:1500", "START:END of the sorted images kept clear (X).", **d)
    flags.DEFINE_string("blurred_range", "1500:3000", "START:END of the images blurred (Y); must "
                        "not overlap --clear_range.", **d)
    shared_flags.define_kernel_flags(fv, blur_kernels=None, num_kernels=16, kernel_sizes="7:15")
    shared_flags.define_noise_flags(fv, 0.01)
    flags.DEFINE_string("output_dir", None, "Output folder.", **d)
    flags.DEFINE_integer("num_shards", 4, "Shards per domain.", **d)
    flags.DEFINE_integer("seed", 0, "Kernel / noise seed.", **d)


def _range(spec):
    a, _, b = spec.partition(":")
    return int(a or 0), int(b)


def gopro_domains(root, split="train"):
    """{"clear": [(source, sharp path)], "blurred": [(source, blurred path)]}: GoPro frames split by
    sequence (sorted; even -> clear, odd -> blurred), read by `data.builders.gopro.generate`."""
    from data.builders import gopro  # pylint: disable=import-outside-toplevel
    try:
        items = list(gopro.generate(root, split))
    except (ValueError, OSError) as e:  # the builder's layout errors name manual_dir
        raise ValueError(f"--gopro={root} (split {split!r}): {e}") from e
    seqs = sorted({ex["sequence"] for _, ex in items})
    if len(seqs) < 2:
        raise ValueError(f"--gopro={root}: split {split!r} holds {len(seqs)} sequence(s); unpaired "
                         "domains from different sequences need at least 2")
    side = {q: ("clear" if i % 2 == 0 else "blurred") for i, q in enumerate(seqs)}
    out = {"clear": [], "blurred": []}
    for key, ex in items:
        d = side[ex["sequence"]]
        out[d].append((key, ex["sharp" if d == "clear" else "blurred"]))
    return out


def prepare_gopro(config) -> dict:
    """The two unpaired GoPro domains as records (stored frames, never re-blurred)."""
    domains = gopro_domains(config.gopro, config.gopro_split)
    counts = {}
    for domain, items in domains.items():
        if os.path.exists(os.path.join(config.output_dir, tfrecord.shard_name(domain, 0,
                                                                             config.num_shards))):
            logging.info("%s records exist: keeping them", domain)
            counts[domain] = "kept"
            continue
        field = "sharp" if domain == "clear" else "blurred"
        with tfrecord.ShardedWriter(config.output_dir, domain, config.num_shards) as w:
            for source, path in items:
                w.write(tfrecord.make_example(**{field: image_io.read_image(path)}, source=source))
        counts[domain] = w.num_written
        logging.info("wrote %d %s GoPro records", w.num_written, domain)
    return counts


def prepare(config) -> dict:
    if not config.output_dir or bool(config.faces) == bool(config.gopro):
        raise ValueError("give --output_dir and exactly one of --faces (a face folder) or --gopro "
                         "(a GOPRO_Large folder)")
    if config.gopro:
        return prepare_gopro(config)
    (c0, c1), (b0, b1) = _range(config.clear_range), _range(config.blurred_range)
    if max(c0, b0) < min(c1, b1):
        raise ValueError(f"--clear_range={config.clear_range} and --blurred_range="
                         f"{config.blurred_range} overlap: the domains must be unpaired")
    kernels = shared_flags.kernel_bank(config)
    if kernels is None:
        raise ValueError("--blur_kernels is required (e.g. ../shared/data/kernels/levin09.npz)")
    paths = image_io.list_images(config.faces)
    rng = np.random.default_rng(config.seed)
    counts, blurred_psnr = {}, []
    for domain, (a, b) in (("clear", (c0, c1)), ("blurred", (b0, b1))):
        final = tfrecord.shard_name(domain, 0, config.num_shards)
        if os.path.exists(os.path.join(config.output_dir, final)):
            logging.info("%s exists: keeping it", final)
            counts[domain] = "kept"
            continue
        chosen = paths[a:b]
        with tfrecord.ShardedWriter(config.output_dir, domain, config.num_shards) as w:
            for p in chosen:
                img = image_io.read_image(p)
                source = os.path.relpath(p, config.faces)
                if domain == "clear":
                    w.write(tfrecord.make_example(sharp=img, source=source))
                    continue
                k = kernels[rng.integers(len(kernels))]
                x = tf.convert_to_tensor(image_io.to_float32(img))
                y = blur.apply_kernels(x, k, border="reflect")
                if config.noise_sigma > 0:
                    y = blur.add_noise(y, config.noise_sigma,
                                       seed=[config.seed, int(rng.integers(1 << 30))])
                y = image_io.to_uint8(np.clip(y.numpy(), 0, 1))
                blurred_psnr.append(metrics.psnr(y, img))
                w.write(tfrecord.make_example(blurred=y, kernel=k, source=source))
        counts[domain] = w.num_written
        logging.info("wrote %d %s records", w.num_written, domain)
    if blurred_psnr:
        counts["blurred_psnr_mean"] = round(float(np.mean(blurred_psnr)), 3)
        with open(os.path.join(config.output_dir, "unpaired.json"), "w") as f:
            json.dump(counts, f, indent=1)
    return counts


def main(argv):
    del argv
    try:
        print(prepare(flags.FLAGS))
    except (ValueError, FileNotFoundError) as e:  # bad input: one line that says what to do
        sys.stderr.write(f"error: {e}\n")
        sys.exit(1)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main, required=('output_dir',))
