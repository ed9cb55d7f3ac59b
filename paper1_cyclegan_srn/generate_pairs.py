"""Stage 2: label clear faces with realistic blur using the trained CycleGAN generator G.

    python -m paper1_cyclegan_srn.generate_pairs \
        --flagfile=paper1_cyclegan_srn/configs/generate_pairs.flags \
        --cyclegan_workdir=runs/p1_cyclegan --output_dir=records/p1/pairs

Paper Sec. 6.1 / Fig. 3: G runs in inference over clear faces (9,000 from CelebA in the paper);
each input is paired with its output (input of SRN = G(clear), target = clear) and the pairs are
split 80/20 into train/test. Records use the shared schema (`image/blurred` = G(clear),
`image/sharp` = clear, `source` = the clear image's name).

Resumable: the (seeded) split is cut into chunks of `--chunk_size` images, each written atomically
by `common.tfrecord.ShardedWriter` as `<split>-chunkNNNN-00000-of-00001.tfrecord`; a rerun skips
the chunks already on disk. The train/test globs are `<output_dir>/train-*.tfrecord` and
`<output_dir>/test-*.tfrecord`. `pairs.json` sums the run up; its `pair_psnr_mean` (mean PSNR of
G(clear) against clear over the pairs this run wrote) measures how strongly G blurs: compare it
with prepare_unpaired's `blurred_psnr_mean` for domain Y.
"""
from __future__ import annotations

import json
import os

from absl import flags, logging
import numpy as np
import tensorflow as tf

from common import blur, cli, image_io, metrics, shared_flags, tfrecord
from common.train import checkpoints, workdirs
from paper1_cyclegan_srn import inputs, train_cyclegan


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    if "cyclegan_workdir" in fv:
        return
    d = dict(flag_values=fv)
    flags.DEFINE_string("cyclegan_workdir", None, "Stage-1 workdir (flags.txt + checkpoints).", **d)
    flags.DEFINE_string("clear_data", None, "Clear faces to label: a folder of images or a "
                        "TFRecord glob holding image/sharp.", **d)
    flags.DEFINE_string("file_range", None, "START:END slice of the sorted clear images (e.g. "
                        "faces held out from stage 1).", **d)
    flags.DEFINE_string("output_dir", None, "Where the paired records go.", **d)
    flags.DEFINE_float("test_fraction", 0.2, "Fraction of pairs kept for testing (paper: 20%).", **d)
    flags.DEFINE_integer("chunk_size", 500, "Images per atomically written chunk (resume unit).", **d)
    flags.DEFINE_integer("batch_size", 16, "Images per generator call.", **d)
    shared_flags.define_resize_flag(fv)
    flags.DEFINE_integer("seed", 0, "Seed of the train/test split.", **d)
    flags.DEFINE_bool("keep_mean_colour", False, "Shift each G(clear) to the clear face's "
                      "per-channel mean (a blur keeps it; CycleGAN's colour drift is not blur). "
                      "Our departure; the paper's setting: false.", **d)
    flags.DEFINE_float("keep_low_frequencies", 0.0, "If > 0: replace each G(clear)'s content at "
                       "scales above this Gaussian sigma (px) by the clear face's, i.e. G(x) - "
                       "lowpass(G(x)) + lowpass(x) (a blur of a few tens of px barely changes a "
                       "face's shading at those scales; a briefly trained CycleGAN drifts it). "
                       "Generalises --keep_mean_colour (sigma -> infinity). Our departure; the "
                       "paper's setting: 0.", **d)


def _slice(items, spec):
    if not spec:
        return items
    start, _, end = spec.partition(":")
    return items[int(start or 0):(int(end) if end else None)]


def list_clear(source, file_range=None):
    """-> list of (name, loader) for the clear faces; loader() returns uint8 [H,W,3]."""
    if not source:
        raise ValueError("--clear_data is required (a folder of clear faces or a TFRecord glob)")
    if inputs.is_folder(source):
        paths = _slice(image_io.list_images(source), file_range)
        return [(os.path.relpath(p, source), (lambda p=p: image_io.read_image(p))) for p in paths]
    files = tfrecord.list_files(source)
    items = []
    for i, raw in enumerate(tf.data.TFRecordDataset(files)):
        raw = raw.numpy()
        keys = tfrecord.record_keys(raw)
        if tfrecord.SHARP not in keys:
            raise ValueError(f"--clear_data={source}: records hold no {tfrecord.SHARP}")
        name = f"record{i:06d}"
        items.append((name, raw))
    items = _slice(items, file_range)

    def loader(raw):
        ex = tfrecord.parse_example(raw, keys=(tfrecord.SHARP,))
        return np.asarray(ex[tfrecord.SHARP])

    return [(name, (lambda raw=raw: loader(raw))) for name, raw in items]


def split_indices(n, test_fraction, seed):
    """Seeded 80/20-style split of range(n) -> (train, test), each sorted."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def load_generator(cyclegan_workdir):
    """Rebuilds G from the stage-1 flags and restores its newest checkpoint."""
    workdirs.check_workdir_kind(cyclegan_workdir, "paper1", ("cyclegan",), "--cyclegan_workdir")
    config = cli.load_flags([train_cyclegan.define_flags], cyclegan_workdir)
    g = train_cyclegan.build_generator(config, "g_net", config.crop_size)
    path = checkpoints.restore_for_eval(cyclegan_workdir, g_net=g)
    logging.info("G restored from %s", path)
    return g


def blur_with_generator(g, images_uint8, keep_mean_colour=False, keep_low_frequencies=0.0):
    """uint8 [B,H,W,3] clear faces -> uint8 [B,H,W,3] G(clear).

    `keep_mean_colour`: shift each G(clear) so its per-channel mean equals the clear face's. A blur
    kernel sums to 1 and keeps an image's mean; a briefly trained CycleGAN's G also drifts each
    face's brightness and colour at random, which no deblurring network can predict from the
    blurred face alone (on the 128 px CPU recipe the drift was half of the pairs' MSE).
    `keep_low_frequencies` (sigma px, > 0): the same at every scale above sigma: G(x) -
    lowpass(G(x)) + lowpass(x), lowpass a Gaussian of that sigma with reflected borders. On the
    fourth strong-blur recipe, 35 % of G's pairs' MSE was below sigma 8 px, against 7 % for Levin
    et al.'s real camera shake on the same faces."""
    x = tf.convert_to_tensor(images_uint8, tf.float32) / 127.5 - 1.0
    y = inputs.to_unit(_g_call(g, x)).numpy()
    clear = np.asarray(images_uint8, np.float32) / 255.0
    if keep_mean_colour:
        y = y - y.mean(axis=(1, 2), keepdims=True) + clear.mean(axis=(1, 2), keepdims=True)
    if keep_low_frequencies > 0:
        size = 2 * int(np.ceil(3 * keep_low_frequencies)) + 1
        k = np.broadcast_to(blur.gaussian_kernel(size, keep_low_frequencies), (len(y), size, size))
        low = lambda a: np.asarray(blur.apply_kernels(tf.constant(a), tf.constant(k)))  # noqa: E731
        y = y - low(y) + low(clear)
    return image_io.to_uint8(np.clip(y, 0.0, 1.0))


def _g_call(g, x):
    if not hasattr(g, "_p1_fn"):
        g._p1_fn = tf.function(lambda t: g(t, training=False), reduce_retracing=True)
    return g._p1_fn(x)


def generate(config, g=None) -> dict:
    """Writes the paired records; returns a summary dict (also saved as pairs.json)."""
    if not config.output_dir:
        raise ValueError("--output_dir is required")
    g = g or load_generator(config.cyclegan_workdir)
    items = list_clear(config.clear_data, config.file_range)
    if not items:
        raise ValueError(f"--clear_data={config.clear_data} --file_range={config.file_range} "
                         f"selects no image")
    resize = shared_flags.parse_resize(config.resize)
    train_idx, test_idx = split_indices(len(items), config.test_fraction, config.seed)
    os.makedirs(config.output_dir, exist_ok=True)
    summary = {"num_images": len(items), "train": int(len(train_idx)), "test": int(len(test_idx)),
               "chunks_written": 0, "chunks_skipped": 0, "clear_data": config.clear_data,
               "file_range": config.file_range, "cyclegan_workdir": config.cyclegan_workdir}
    preview, pair_psnr = [], []
    for split, idx in (("train", train_idx), ("test", test_idx)):
        for c, start in enumerate(range(0, len(idx), config.chunk_size)):
            name = f"{split}-chunk{c:04d}"
            final = os.path.join(config.output_dir, tfrecord.shard_name(name, 0, 1))
            if os.path.exists(final):
                summary["chunks_skipped"] += 1
                continue
            chunk = [items[i] for i in idx[start:start + config.chunk_size]]
            with tfrecord.ShardedWriter(config.output_dir, name, 1) as writer:
                for b in range(0, len(chunk), config.batch_size):
                    names, clear = _load_batch(chunk[b:b + config.batch_size], resize)
                    for group in _same_shape_groups(clear):
                        sharp = np.stack([clear[i] for i in group])
                        blurred = blur_with_generator(g, sharp, config.keep_mean_colour,
                                                      config.keep_low_frequencies)
                        pair_psnr.extend(metrics.psnr(blurred, sharp))
                        for j, i in enumerate(group):
                            writer.write(tfrecord.make_example(sharp=clear[i], blurred=blurred[j],
                                                               source=names[i]))
                            if len(preview) < 6 and split == "test":
                                preview.append([blurred[j], clear[i]])
            summary["chunks_written"] += 1
            logging.info("wrote %s (%d pairs)", final, writer.num_written)
    if preview:
        image_io.contact_sheet(preview, labels=["G(clear) = input", "clear = target"],
                               path=os.path.join(config.output_dir, "preview.png"))
    if pair_psnr:  # chunks written by this run only
        summary["pair_psnr_mean"] = round(float(np.mean(pair_psnr)), 3)
    with open(os.path.join(config.output_dir, "pairs.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def _load_batch(chunk, resize):
    names, images = [], []
    for name, loader in chunk:
        img = loader()
        if resize is not None:
            img = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(img, resize, antialias=True)),
                                           0, 255), tf.uint8).numpy()
        names.append(name)
        images.append(img)
    return names, images


def _same_shape_groups(images):
    groups = {}
    for i, img in enumerate(images):
        groups.setdefault(img.shape, []).append(i)
    return list(groups.values())


def main(argv):
    del argv
    summary = generate(flags.FLAGS)
    print(json.dumps(summary))


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    cli.run_app(main, required=('cyclegan_workdir', 'clear_data', 'output_dir'))
