"""A no-learning baseline: LBP histograms compared with the chi-square distance.

Each crop is cut back to the detector's face box (the crops carry a 20% margin on
every side: the box is their central 1/1.4), resized to 112x112 grey, coded with local binary patterns (8 neighbours,
radius 1, the 59-bin non-rotation-invariant uniform code, skimage's `nri_uniform`),
and described by one normalised histogram per cell of a 7x7 grid (Ahonen et al. 2006).
"""

from __future__ import annotations

import cv2
import numpy as np

from facelib.data.images import load_image

GRID, SIZE, BINS = 7, 112, 59
BOX_FRACTION = 1 / 1.4  # the face box inside a crop made with margin 0.2


def lbp_features(rgb: np.ndarray, box_fraction: float = BOX_FRACTION) -> np.ndarray:
    from skimage.feature import local_binary_pattern  # scikit-image: only the baseline needs it

    side = rgb.shape[0]
    cut = int(round(side * (1 - box_fraction) / 2))
    box = rgb[cut : side - cut, cut : side - cut]
    grey = cv2.cvtColor(cv2.resize(box, (SIZE, SIZE), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    codes = local_binary_pattern(grey, P=8, R=1, method="nri_uniform").astype(int)
    cell = SIZE // GRID
    histograms = [
        np.bincount(codes[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell].ravel(), minlength=BINS)
        for r in range(GRID)
        for c in range(GRID)
    ]
    features = np.concatenate(histograms).astype(np.float32)
    return features / features.sum()


def lbp_embed(paths: list[str]) -> np.ndarray:
    return np.stack([lbp_features(load_image(p)) for p in paths])


def chi_square(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise chi-square distance between histograms."""
    return np.sum((a - b) ** 2 / (a + b + 1e-10), axis=1)
