"""Deblur real photos with a trained UMSN (SN + UMSN), any size, inputs never overwritten.

    python -m paper3_umsn.deblur --checkpoint=/tmp/umsn INPUT... --output_dir=/tmp/out \
        [--face_detector=mtcnn] [--face_size=128] [--tile=256]

--checkpoint: a umsn-stage workdir (rebuilt from its flags.txt) or an exported `.keras` file.
--face_detector: detect faces (common.face backends), deblur an enlarged crop of each, paste back.
"""
from absl import app, flags

from common import inference, train_utils
from paper3_umsn import models


def define_flags(fv=flags.FLAGS):
    d = dict(flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "umsn-stage workdir or exported .keras file.", **d)
    flags.DEFINE_string("output_dir", None, "Where the deblurred PNGs go.", **d)
    flags.DEFINE_string("suffix", "_umsn", "Appended to each output file name.", **d)
    flags.DEFINE_integer("tile", 0, "Process images larger than this in overlapping tiles (0: whole).", **d)
    flags.DEFINE_string("face_detector", None, "mtcnn | haar | dlib: deblur detected faces only.", **d)
    flags.DEFINE_integer("face_size", 0, "Resize each face crop to this size for the network (0: as is).", **d)
    flags.DEFINE_bool("overwrite", False, "Replace existing outputs (never inputs).", **d)


def load_model(checkpoint):
    if checkpoint is None:
        raise app.UsageError("--checkpoint is required (a umsn workdir or a .keras file)")
    if checkpoint.endswith(".keras"):
        return inference.load_keras(checkpoint)
    from paper3_umsn import evaluate
    return evaluate.load_run(checkpoint)[1]


def run(checkpoint, inputs, output_dir, suffix="_umsn", tile=0, face_detector=None, face_size=0,
        overwrite=False):
    model = load_model(checkpoint)
    detector = None
    if face_detector:
        from common.face import get_detector
        detector = get_detector(face_detector)
    return inference.deblur_files(lambda x: model(x), inputs, output_dir, stride=models.UMSN_STRIDE,
                                  tile=tile, detector=detector, face_size=face_size or None,
                                  suffix=suffix, overwrite=overwrite)


def main(argv):
    fv = flags.FLAGS
    if len(argv) < 2:
        raise app.UsageError("give one or more input images or folders")
    for path in run(fv.checkpoint, argv[1:], fv.output_dir, fv.suffix, fv.tile, fv.face_detector,
                    fv.face_size, fv.overwrite):
        print(path)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main, flags_parser=train_utils.flags_parser)
