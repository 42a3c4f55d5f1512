"""Figures the notebooks show: small functions that take data and return a Figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from facelib.crop import choose_face, crop_face
from facelib.datasets import Census
from facelib.detection import Detector
from facelib.images import load_image


def images_per_person(census: Census) -> Figure:
    """Histogram of images per identity (log scale: most people have one image)."""
    counts = np.array(list(census.images_per_person.values()))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.hist(counts, bins=np.arange(1, counts.max() + 2) - 0.5, log=True, color="tab:blue")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("images per person")
    ax.set_ylabel("people (log)")
    ax.set_title(f"LFW: {census.people:,} people, {census.images:,} images")
    fig.tight_layout()
    return fig


def _draw_faces(ax, rgb: np.ndarray, faces, chosen) -> None:
    ax.imshow(rgb)
    for face in faces:
        x, y, w, h = face.box
        colour = "lime" if face == chosen else "red"
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=2))
        if face.eyes is not None:
            ax.plot(*np.array(face.eyes).T, "o", color=colour, markersize=3)
    ax.axis("off")


def detections_and_crops(
    paths: list[Path], detector: Detector, size: int = 160, margin: float = 0.2, align: bool = True
) -> Figure:
    """Each original with its detected boxes (green: the one kept) next to its crop."""
    fig, axes = plt.subplots(len(paths), 2, figsize=(5, 2.5 * len(paths)), squeeze=False)
    for (ax_original, ax_crop), path in zip(axes, paths, strict=True):
        rgb = load_image(path)
        faces = detector.detect(rgb)
        chosen = choose_face(faces, rgb.shape)
        _draw_faces(ax_original, rgb, faces, chosen)
        ax_original.set_title(f"{path.parent.name}: {len(faces)} face(s)", fontsize=8)
        if chosen is not None:
            ax_crop.imshow(crop_face(rgb, chosen, size, margin, align))
        ax_crop.set_title(f"crop {size}x{size}" if chosen else "no face", fontsize=8)
        ax_crop.axis("off")
    fig.tight_layout()
    return fig


def status_counts(counts: dict[str, int]) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 2.5))
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color="tab:green")
    for i, n in enumerate(names):
        ax.text(counts[n], i, f" {counts[n]:,}", va="center")
    ax.set_xlabel("images")
    ax.set_title("detection outcome")
    fig.tight_layout()
    return fig


def image_grid(paths: list[Path], titles: list[str] | None = None, columns: int = 6) -> Figure:
    rows = max(1, -(-len(paths) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(paths):
            ax.imshow(load_image(paths[i]))
            if titles:
                ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig
