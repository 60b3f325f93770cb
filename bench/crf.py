"""DeepLab's fully connected CRF after a trained network (Tables 3 and 4, "DeepLab-LargeFOV-denseCRF").

Krähenbühl and Koltun's dense CRF: the network's softmax as unaries, a Gaussian kernel on pixel positions
(smoothness) and a bilateral kernel on positions and RGB (appearance), mean-field inference, then the argmax.
The inference is pydensecrf2's (the authors' C++ code); this module only chooses its parameters and runs it
over images on all cores.

DeepLab (Chen et al., ICLR 2015, Sec. 4) fixed the Gaussian kernel (weight 3, width 3 pixels), ran 10
mean-field iterations, and chose the bilateral kernel's weight and widths by cross-validation on val images.
The SegNet paper gives no CRF parameters for CamVid or SUN RGB-D, so ours are chosen the same way, on the
validation split, from GRID (our choice, around DeepLab-LargeFOV's released setting: weight 4, position
width 121, colour width 5), by validation mIoU; the chosen values and every candidate's score are recorded.

A post-processed member is a suite member that trains nothing: it takes the selected weights of a recorded
run of the member it post-processes (`[postprocessed.*]` in architectures/models.toml; `bench.postprocess`), and
writes a record like any other.
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from dataclasses import asdict, dataclass

import numpy as np

from bench.errors import BenchError
from bench.safety import forked_pool

@dataclass(frozen=True)
class CRFParams:
    bilateral_weight: float = 4.0     # w1
    bilateral_xy_std: float = 121.0   # sigma_alpha, pixels
    bilateral_rgb_std: float = 5.0    # sigma_beta, colour levels
    gaussian_weight: float = 3.0      # w2: DeepLab fixed it to 3
    gaussian_xy_std: float = 3.0      # sigma_gamma: DeepLab fixed it to 3
    iterations: int = 10              # mean-field iterations (DeepLab: 10)


GRID = {"bilateral_weight": (3.0, 4.0, 5.0), "bilateral_xy_std": (50.0, 80.0, 121.0), "bilateral_rgb_std": (3.0, 5.0)}
VAL_IMAGES = 50  # the first validation images the grid is scored on (DeepLab: 100 of VOC's val); fewer where a
                 # profile's val subset is smaller


def grid(spec: dict = GRID) -> list[CRFParams]:
    """Every combination of the values in ``spec`` (the other parameters at their defaults)."""
    keys = list(spec)
    return [CRFParams(**dict(zip(keys, values))) for values in itertools.product(*(spec[k] for k in keys))]


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        raise BenchError("the dense CRF needs pydensecrf2 (pip install pydensecrf2; it builds from source with a "
                         "C++ compiler)") from None
    return dcrf


def dense_crf(image: np.ndarray, probs: np.ndarray, params: CRFParams = CRFParams()) -> np.ndarray:
    """The label map (uint8, H x W) of the dense CRF over one image: ``image`` RGB uint8 H x W x 3, ``probs``
    the network's softmax K x H x W."""
    dcrf = _densecrf()
    k, h, w = probs.shape
    if image.shape != (h, w, 3):
        raise ValueError(f"image of shape {image.shape} for probabilities of {probs.shape}")
    crf = dcrf.DenseCRF2D(w, h, k)
    unary = -np.log(np.clip(probs.astype(np.float32), 1e-8, 1.0)).reshape(k, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=params.gaussian_xy_std, compat=params.gaussian_weight)
    crf.addPairwiseBilateral(sxy=params.bilateral_xy_std, srgb=params.bilateral_rgb_std,
                             rgbim=np.ascontiguousarray(image, dtype=np.uint8), compat=params.bilateral_weight)
    q = np.asarray(crf.inference(params.iterations)).reshape(k, h, w)
    return q.argmax(0).astype(np.uint8)


_SHARED: dict = {}


def _one(args):
    i, params = args
    return dense_crf(_SHARED["images"][i], _SHARED["probs"][i], params)


def crf_label_maps(images, probs, params: CRFParams, workers: int | None = None) -> np.ndarray:
    """Label maps N x H x W of the dense CRF over ``images`` (N x H x W x 3 uint8) and ``probs`` (N x K x H x
    W) on ``workers`` forked processes (default: all cores)."""
    return _map([(i, params) for i in range(len(images))], images, probs, workers).reshape(len(images), *images.shape[1:3])


def _map(jobs, images, probs, workers):
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    _SHARED.update(images=images, probs=probs)
    try:
        if workers > 1 and "fork" in mp.get_all_start_methods():
            with forked_pool(workers) as pool:
                out = list(pool.map(_one, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
        else:
            out = [_one(j) for j in jobs]
    finally:
        _SHARED.clear()
    return np.stack(out) if out else np.zeros((0, *images.shape[1:3]), np.uint8)


def choose_params(images, probs, labels, score, candidates=None, workers: int | None = None):
    """The candidate whose CRF output scores best on (validation) images, by ``score(pred_maps, labels)``
    (a number, higher is better; ties: the first candidate). Returns (best, [{**params, "score": s}, ...])."""
    candidates = list(candidates or grid())
    if not candidates:
        raise BenchError("the CRF parameter grid is empty")
    n = len(images)
    jobs = [(i, c) for c in candidates for i in range(n)]
    maps = _map(jobs, images, probs, workers)
    table = []
    for j, c in enumerate(candidates):
        table.append({**asdict(c), "score": float(score(maps[j * n:(j + 1) * n], labels))})
    best = max(range(len(candidates)), key=lambda j: (table[j]["score"], -j))
    return candidates[best], table
