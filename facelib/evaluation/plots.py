"""Figures the notebooks show: small functions that take data and return a Figure."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from facelib.core.decision import same_person
from facelib.core.metrics import expected_calibration_error, reliability
from facelib.core.metrics import roc as roc_points
from facelib.data.crop import CropSettings, crop_picture, detect_faces
from facelib.data.datasets import Census
from facelib.data.detection import Detector
from facelib.data.images import load_image
from facelib.evaluation.robustness import DEGRADATIONS, degrade


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
    paths: list[Path], detector: Detector, settings: CropSettings | None = None
) -> Figure:
    """Each original with its detected boxes (green: the one kept) next to its crop,
    made by the crop policy preprocessing and verification use (crop.crop_picture)."""
    settings = settings or CropSettings()
    fig, axes = plt.subplots(len(paths), 2, figsize=(5, 2.5 * len(paths)), squeeze=False)
    for (ax_original, ax_crop), path in zip(axes, paths, strict=True):
        rgb = load_image(path)
        faces, _ = detect_faces(rgb, detector, settings)
        crop, info = crop_picture(rgb, detector, settings)
        _draw_faces(ax_original, rgb, faces, info.face)
        ax_original.set_title(f"{path.parent.name}: {len(faces)} face(s)", fontsize=8)
        ax_crop.imshow(crop)
        size = settings.size
        ax_crop.set_title(f"crop {size}x{size}" if info.face else "no face: centre crop", fontsize=8)
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


def batch_grid(images: np.ndarray, labels: np.ndarray, names: list[str], k: int) -> Figure:
    """A P×K batch: one row per identity, K augmented images each."""
    rows = len(images) // k
    fig, axes = plt.subplots(rows, k, figsize=(1.6 * k, 1.7 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.imshow(images[i].astype("uint8"))
        ax.axis("off")
        if i % k == 0:
            ax.set_title(names[int(labels[i])], fontsize=7, loc="left")
    fig.tight_layout()
    return fig


def triplet_grid(images: np.ndarray, labels: np.ndarray, names: list[str], rows: int = 4) -> Figure:
    """Random triplets laid out [anchors; positives; negatives]: one triplet per row."""
    anchors, positives, negatives = np.split(images, 3)
    la, _, ln = np.split(labels, 3)
    rows = min(rows, len(anchors))
    fig, axes = plt.subplots(rows, 3, figsize=(5, 1.8 * rows), squeeze=False)
    for r in range(rows):
        for c, (image, title) in enumerate(
            [
                (anchors[r], f"anchor: {names[int(la[r])]}"),
                (positives[r], "positive"),
                (negatives[r], f"negative: {names[int(ln[r])]}"),
            ]
        ):
            axes[r, c].imshow(image.astype("uint8"))
            axes[r, c].set_title(title, fontsize=7)
            axes[r, c].axis("off")
    fig.tight_layout()
    return fig


def training_curves(history_csv: Path) -> Figure:
    """Loss and validation AUC per epoch, from a run's history.csv."""
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (ax_loss, ax_auc) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax_loss.plot(epochs, [float(r["loss"]) for r in rows], "o-")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_auc.plot(epochs, [float(r["val_auc"]) for r in rows], "o-", color="tab:green")
    ax_auc.axhline(0.5, color="grey", linestyle=":", label="chance")
    ax_auc.set(xlabel="epoch", ylabel="AUC", title="validation verification AUC (unseen identities)")
    ax_auc.legend()
    fig.tight_layout()
    return fig


def distance_histogram(
    distances: np.ndarray,
    same: np.ndarray,
    threshold: float,
    title: str = "",
    in_use: float | None = None,
) -> Figure:
    """Distances of same-person and different-person pairs, with the threshold these
    pairs chose and, when it differs, the one in use (kept in the model's card)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.linspace(distances.min(), distances.max(), 40)
    ax.hist(distances[same.astype(bool)], bins, alpha=0.6, label="same person", color="tab:green")
    ax.hist(distances[~same.astype(bool)], bins, alpha=0.6, label="different people", color="tab:red")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    if in_use is not None and in_use != threshold:
        ax.axvline(in_use, color="tab:blue", linestyle=":", label=f"threshold in use {in_use:.3f}")
    ax.set(xlabel="embedding distance", ylabel="pairs", title=f"distances {title}")
    ax.legend()
    fig.tight_layout()
    return fig


def roc(evaluation) -> Figure:
    """ROC curves of every protocol row, false accept rate on a log scale."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for row in evaluation.rows:
        distances, same, _ = evaluation.distances[row.protocol]
        fpr, tpr = roc_points(distances, same)
        ax.plot(np.maximum(fpr, 1e-4), tpr, label=f"{row.protocol} (AUC {row.auc:.3f})")
    ax.set_xscale("log")
    ax.set(
        xlim=(1e-3, 1),
        ylim=(0, 1.01),
        xlabel="false accept rate (log)",
        ylabel="true accept rate",
        title="ROC",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def hardest_mistakes(distances, same, pairs, threshold: float, crops_root: Path, n: int = 4) -> Figure:
    """The false accepts with the smallest distances and the false rejects with the
    largest: each pair side by side with its distance."""
    same = same.astype(bool)
    false_accepts = [
        i for i in np.argsort(distances) if not same[i] and same_person(distances[i], threshold)
    ][:n]
    false_rejects = [
        i for i in np.argsort(-distances) if same[i] and not same_person(distances[i], threshold)
    ][:n]
    rows = [("false accept", i) for i in false_accepts] + [("false reject", i) for i in false_rejects]
    fig, axes = plt.subplots(max(1, len(rows)), 2, figsize=(4, 2.1 * max(1, len(rows))), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for (kind, i), (ax_left, ax_right) in zip(rows, axes, strict=False):
        pair = pairs[i]
        ax_left.imshow(load_image(crops_root / pair.left.relpath))
        ax_right.imshow(load_image(crops_root / pair.right.relpath))
        ax_left.set_title(f"{kind}: d={distances[i]:.3f}", fontsize=7, loc="left")
        ax_right.set_title(f"{pair.left.person} / {pair.right.person}", fontsize=6)
    fig.tight_layout()
    return fig


def dir_fpir(
    curves: dict[str, dict],
    points: dict[str, list[tuple[float, float]]] | None = None,
    title: str = "open-set identification",
) -> Figure:
    """Detection-and-identification rate against the false-positive identification
    rate (log scale), one line per label (`{"fpir": [...], "dir": [...]}`, as
    `identification.open_set_figures` returns under "curve"); `points` marks operating
    points on them (the calibrated rule's). An FPIR of 0 is drawn at the left edge."""
    positive = [f for c in curves.values() for f in c["fpir"] if f > 0]
    positive += [f for marks in (points or {}).values() for f, _ in marks if f > 0]
    floor = min(positive) / 2 if positive else 1e-3
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curve in curves.items():
        fpir = np.maximum(np.asarray(curve["fpir"], float), floor)
        (line,) = ax.step(fpir, curve["dir"], where="post", label=label)
        for f, d in (points or {}).get(label, []):
            ax.plot(max(f, floor), d, "o", color=line.get_color(), markersize=6, markeredgecolor="black")
    if points:
        ax.plot([], [], "o", color="grey", markeredgecolor="black", label="calibrated threshold")
    highest = max([d for c in curves.values() for d in c["dir"]] or [1.0])
    ax.set_xscale("log")
    ax.set(
        xlim=(floor, 1),
        ylim=(0, min(1.01, max(0.25, 1.15 * highest))),  # weak models: the curves stay legible
        xlabel="FPIR: strangers given a name (log)",
        ylabel="DIR: enrolled people named rightly",
        title=title,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def degradation_examples(path: Path, names: list[str] | None = None) -> Figure:
    """One picture under each degradation of the robustness suite."""
    names = names or list(DEGRADATIONS)
    rgb = load_image(path)
    fig, axes = plt.subplots(1, len(names), figsize=(1.6 * len(names), 2.0), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.imshow(degrade(rgb, name, 0, 0))
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def robustness(reports: dict) -> Figure:
    """Validation AUC per degradation, one bar per model ({label: RobustnessReport}),
    with the share of pictures the crop policy found a face in under each bar."""
    labels = list(reports)
    names = [r.degradation for r in reports[labels[0]].rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) * max(1, len(labels))), 3.8))
    width = 0.8 / len(labels)
    x = np.arange(len(names))
    for i, label in enumerate(labels):
        rows = {r.degradation: r for r in reports[label].rows}
        aucs = [rows[n].auc if n in rows else np.nan for n in names]
        bars = ax.bar(x + (i - (len(labels) - 1) / 2) * width, aucs, width, label=label)
        for bar, n in zip(bars, names, strict=True):
            if n in rows and rows[n].faces_found < 0.995:
                ax.annotate(
                    f"{100 * rows[n].faces_found:.0f}%\nfound",
                    (bar.get_x() + bar.get_width() / 2, 0.5),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(x, names, rotation=30)
    lowest = min(r.auc for report in reports.values() for r in report.rows)
    ax.set_ylim(min(0.5, lowest - 0.05), 1.0)
    ax.set_ylabel("validation AUC")
    ax.set_title("One picture of each validation pair degraded (dotted: chance)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def reliability_diagram(probabilities, same, title: str = "", bins: int = 10) -> Figure:
    """Predicted P(same person) against the observed share of same-person pairs, per
    bin (a calibrated confidence lies on the diagonal), with the pairs per bin below and
    the expected calibration error (ECE) in the title."""
    predicted, observed, counts = reliability(probabilities, same, bins)
    ece = expected_calibration_error(probabilities, same, bins)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.8, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], ls="--", color="grey", label="calibrated")
    full = counts > 0
    top.plot(predicted[full], observed[full], "o-", color="tab:blue", label="this confidence")
    top.set_ylabel("share of same-person pairs")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{title}{': ' if title else ''}ECE {ece:.3f}")
    edges = np.linspace(0, 1, bins + 1)
    bottom.bar(edges[:-1], counts, width=1 / bins, align="edge", color="tab:grey", edgecolor="white")
    bottom.set_xlabel("predicted P(same person)")
    bottom.set_ylabel("pairs")
    fig.tight_layout()
    return fig
