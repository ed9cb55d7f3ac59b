"""One evaluation core for every paper and for the cross-method benchmark.

    methods.py    a Method maps float32 [B,H,W,3] in [0,1] to restored images: paper workdirs,
                  .keras files, SavedModels, shipped weights, `module:function`, classical
                  baselines (blurred, wiener, rl, unsharp); name, parameter count, stride
    stored_sets.py  a TestSet is fixed pairs: TFRecords (data.build), the folder layout
                  DIR/{blurred,sharp}/NAME (+ kernels/, masks/, landmarks/, identities.txt), or
                  a folder of real blurry photos (no reference); never re-blurred
    runner.py     evaluate(method, test_set, face=None) -> per-image and mean metrics:
                  PSNR/SSIM (whole image, face region, per class), landmark NME/AUC/failure,
                  identity cosine, detection rate, ms per image
`python -m common.compare` drives them over several methods (see common/compare.py).
"""
from common.evaluation.methods import Method, parse_method_flag, resolve_method
from common.evaluation.stored_sets import Sample, TestSet, load_test_set
from common.evaluation.runner import MethodResult, evaluate, restore_all

__all__ = ["Method", "parse_method_flag", "resolve_method", "Sample", "TestSet", "load_test_set",
           "MethodResult", "evaluate", "restore_all"]
