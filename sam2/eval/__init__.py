"""Video object segmentation tools: J&F evaluation and dataset-scale inference.

``evaluate(gt_root, pred_root)`` scores predicted masks with the SA-V / DAVIS protocol (region
similarity J, boundary measure F); :mod:`sam2.eval.vos` runs a video predictor over a dataset folder
(the equivalent of the official ``tools/vos_inference.py``).
"""

from sam2.eval.evaluator import evaluate, evaluate_video
from sam2.eval.metrics import boundary_f_measure, region_similarity, seg2bmap
from sam2.eval.results import EvalResult, ObjectScore, VideoScore

__all__ = [
    "EvalResult",
    "ObjectScore",
    "VideoScore",
    "boundary_f_measure",
    "evaluate",
    "evaluate_video",
    "region_similarity",
    "seg2bmap",
]
