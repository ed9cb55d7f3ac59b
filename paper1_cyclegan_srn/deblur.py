"""Deblur real photos with the trained SRN (paper Fig. 4 / Fig. 7), any size, inputs never overwritten.

    python -m paper1_cyclegan_srn.deblur --checkpoint=runs/p1_srn INPUT... --output_dir=/tmp/out \
        [--face_detector=mtcnn] [--face_size=128] [--tile=256]

--checkpoint: an SRN workdir (the network is rebuilt from its flags.txt, the newest checkpoint
restored). --face_detector: deblur an enlarged crop around each detected face and paste it back
(`common.inference.deblur_faces`); without it the whole image is restored.
"""
from absl import app, flags

from common import inference, train_utils
from paper1_cyclegan_srn import evaluate


def define_flags(fv=flags.FLAGS):
    d = dict(flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "SRN workdir (flags.txt + checkpoints/).", **d)
    flags.DEFINE_string("output_dir", None, "Where the deblurred PNGs go.", **d)
    flags.DEFINE_string("suffix", "_srn", "Appended to each output file name.", **d)
    flags.DEFINE_integer("tile", 0, "Process images larger than this in overlapping tiles "
                         "(0: whole image; a multiple of 16).", **d)
    flags.DEFINE_string("face_detector", None, "mtcnn | haar | dlib: deblur detected faces only.", **d)
    flags.DEFINE_integer("face_size", 0, "Resize each face crop to this size for the network "
                         "(0: as is).", **d)
    flags.DEFINE_bool("overwrite", False, "Replace existing outputs (never inputs).", **d)


def run(checkpoint, input_paths, output_dir, suffix="_srn", tile=0, face_detector=None,
        face_size=0, overwrite=False):
    if not checkpoint:
        raise app.UsageError("--checkpoint is required (an SRN training workdir)")
    model = evaluate.load_srn(checkpoint)
    detector = None
    if face_detector:
        from common.face import get_detector
        detector = get_detector(face_detector)
    # SRN pads internally to its stride (16 for 3 scales); stride 16 here keeps tiles aligned.
    return inference.deblur_files(lambda x: model(x), input_paths, output_dir, stride=16,
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
