"""The one rule that turns a distance into a verdict, used everywhere a verdict is made
(verification, gallery, dashboard, evaluation, training's validation threshold).

    same_person(0.71, threshold=0.9)  → True
    same_person(np.array([...]), t)   → boolean array

Two faces are the same person when the distance between their embeddings is strictly
below the threshold.
"""

from __future__ import annotations

import numpy as np


def embedding_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Euclidean distance between embeddings, row by row for 2-D inputs."""
    distance = np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)
    return float(distance) if np.ndim(distance) == 0 else distance


def same_person(distance, threshold: float):
    """The verdict: a bool for one distance, a boolean array for many."""
    verdict = np.asarray(distance) < threshold
    return bool(verdict) if verdict.ndim == 0 else verdict


def mean_embedding(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Test-time augmentation: the mean of two views' embeddings, re-normalised."""
    mean = a + b
    return mean / (np.linalg.norm(mean, axis=1, keepdims=True) + 1e-12)
