"""What a run writes for TensorBoard, in `models/<run>/logs/` beside history.csv.

Each epoch (Keras's TensorBoard callback, after the callbacks that fill the epoch's logs):
train/ holds epoch_loss (and each output's loss with a CosFace head), epoch_learning_rate,
epoch_images_per_second, epoch_train_seconds, epoch_peak_rss_mb; validation/ holds
epoch_auc and epoch_gap (ValidationAUC's val_auc and val_gap). At the end, validation/
also gets an embedding projector of the validation people: their crops' embeddings by
the saved float32 model, each labelled with its person, with a thumbnail sprite.

    make tensorboard        # serves models/*/logs on 127.0.0.1
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from PIL import Image

LOGS = "logs"
PROJECTOR_RUN = "validation"  # the projector sits in a folder TensorBoard reads as a run
PROJECTOR_CONFIG = "projector_config.pbtxt"
THUMBNAIL = 48  # pixels of a sprite's thumbnail
MAX_PICTURES = 1024  # a sprite is at most 8192 px a side: 32 × 32 thumbnails here


def tensorboard_callback(run_path: Path) -> keras.callbacks.TensorBoard:
    """Scalars once an epoch; no graph, no profile (the run's speed is measured, not traced)."""
    return keras.callbacks.TensorBoard(
        str(run_path / LOGS), write_graph=False, update_freq="epoch", profile_batch=0
    )


@dataclass(frozen=True)
class Projected:
    """The pictures of the projector and their embeddings."""

    paths: list[str]
    people: list[str]
    embeddings: np.ndarray


def projector_pictures(model: keras.Model, paths: list[str], people: list[str], input_size: int) -> Projected:
    """The validation crops (`paths`, each of the person in `people`; evenly spaced when
    more than MAX_PICTURES) and their embeddings. On every worker of a multi-worker run:
    predict runs on them all."""
    from facelib.data.pipeline import embed_files  # TensorFlow

    if len(paths) > MAX_PICTURES:
        keep = np.linspace(0, len(paths) - 1, MAX_PICTURES).astype(int)
        paths, people = [paths[i] for i in keep], [people[i] for i in keep]
    return Projected(paths, people, embed_files(model, paths, input_size))


def write_projector(run_path: Path, projected: Projected) -> Path:
    """The embedding projector: embeddings.tsv, metadata.tsv, sprite.png and the
    projector's config, in logs/validation/ (the chief worker's job)."""
    folder = run_path / LOGS / PROJECTOR_RUN
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "embeddings.tsv", projected.embeddings, delimiter="\t", fmt="%.6f")
    # Two columns need a header row; names are LFW's folder names (no tabs).
    rows = [
        f"{person}\t{Path(path).name}" for person, path in zip(projected.people, projected.paths, strict=True)
    ]
    (folder / "metadata.tsv").write_text("person\tpicture\n" + "\n".join(rows) + "\n")
    _sprite(projected.paths).save(folder / "sprite.png")
    (folder / PROJECTOR_CONFIG).write_text(
        "embeddings {\n"
        '  tensor_name: "validation people"\n'
        '  tensor_path: "embeddings.tsv"\n'
        '  metadata_path: "metadata.tsv"\n'
        "  sprite {\n"
        '    image_path: "sprite.png"\n'
        f"    single_image_dim: {THUMBNAIL}\n"
        f"    single_image_dim: {THUMBNAIL}\n"
        "  }\n"
        "}\n"
    )
    return folder


def _sprite(paths: list[str]) -> Image.Image:
    """The thumbnails in a square grid, row by row, as the projector reads them."""
    side = int(np.ceil(np.sqrt(len(paths))))
    sprite = Image.new("RGB", (side * THUMBNAIL, side * THUMBNAIL))
    for i, path in enumerate(paths):
        with Image.open(path) as picture:
            thumbnail = picture.convert("RGB").resize((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
        sprite.paste(thumbnail, ((i % side) * THUMBNAIL, (i // side) * THUMBNAIL))
    return sprite
