"""The embedding network and its model folder.

    model = build_embedding_model(input_size=112, embedding_dim=128)
    save_model_folder(folder, model, card)      # model.keras + card.json
    model, card = load_model_folder(folder)     # validated against the card

ResNet50 (no top) → global average pooling → Dense(embedding_dim) → L2 normalisation.
Scaling lives inside the model, so a saved model takes raw RGB crops (0–255).
A model folder `models/<run>/` holds model.keras, card.json, history.csv and the
training backup used to resume.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers, ops

from facelib.core import config
from facelib.core.files import atomic_path
from facelib.recognition.card import CARD_FILE, ModelCard, ModelError


@keras.saving.register_keras_serializable(package="facelib")
class ResNetPreprocess(layers.Layer):
    """RGB 0–255 → ResNet50's "caffe" input (BGR, ImageNet mean subtracted), the
    scaling `weights="imagenet"` expects; kept for scratch training so both match."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs):
        bgr = ops.flip(ops.cast(inputs, self.compute_dtype), axis=-1)
        return bgr - ops.convert_to_tensor(self.MEAN_BGR, dtype=self.compute_dtype)


def build_embedding_model(
    input_size: int = 112,
    embedding_dim: int = 128,
    weights: str | None = None,
    head: str = "l2",
    dropout: float = 0.0,
) -> keras.Model:
    """`weights`: None (scratch), "imagenet" (needs internet), or a path to a
    facelib .keras model whose weights are copied. `head`: "l2" (unit-length
    embeddings) or "relu" (the seed's unnormalised ReLU dense embedding, a baseline).
    `dropout`: the share of pooled features dropped in training (it adds no weights, so
    a model built without it takes the same weights)."""
    if head not in config.HEADS:
        raise ValueError(f"head must be one of {', '.join(config.HEADS)}, not {head!r}")
    imagenet = weights == "imagenet"
    inputs = keras.Input((input_size, input_size, 3), name="rgb")
    x = ResNetPreprocess(name="preprocess")(inputs)
    backbone = keras.applications.ResNet50(
        include_top=False, weights="imagenet" if imagenet else None, input_shape=(input_size, input_size, 3)
    )
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="embedding_dropout")(x)
    if head == "l2":
        x = layers.Dense(embedding_dim, name="embedding_dense")(x)
        # Centring the embeddings over the batch keeps them from collapsing onto one
        # shared direction early in training from scratch (docs/benchmarks.md, "Figures
        # once quoted in the code").
        x = layers.BatchNormalization(name="embedding_bn")(x)
        # float32 so mixed precision never normalises in half precision
        outputs = layers.UnitNormalization(axis=-1, name="embedding", dtype="float32")(x)
    else:
        outputs = layers.Dense(embedding_dim, activation="relu", name="embedding", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=f"facelib_resnet50_{head}")
    if weights not in (None, "imagenet"):
        folder = Path(weights).parent if Path(weights).is_file() else Path(weights)
        source, _ = load_model_folder(folder)
        model.set_weights(source.get_weights())
    return model


# ----------------------------------------------------------------------- model folder


def save_model_folder(folder: Path, model: keras.Model, card: ModelCard) -> Path:
    """Write model.keras and card.json; each appears whole or not at all. The card's
    input size and embedding dimension are the model's."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.keras", suffix=".keras") as tmp:
        model.save(tmp)
    card.input_size, card.embedding_dim = int(model.input_shape[1]), int(model.output_shape[-1])
    card.save(folder)
    return folder / "model.keras"


def trained_run_names() -> list[str]:
    """Run names under models/ that hold a finished model."""
    return sorted(p.parent.name for p in config.models_dir().glob("*/model.keras"))


def resolve_model_folder(model: str | Path) -> Path:
    """A model folder given as a path, or as a run name under models/. Neither: a
    ModelError that lists the runs there are."""
    folder = Path(model)
    if folder.is_dir():
        return folder
    named = config.models_dir() / folder
    if named.is_dir():
        return named
    runs = trained_run_names()
    raise ModelError(
        f"model {str(model)!r} does not exist: no such folder, nor a run of that name in "
        f"{config.models_dir()}; "
        + (f"trained runs there: {', '.join(runs)}" if runs else "no trained run there yet")
        + " (make one with `facelib train --name RUN`)"
    )


def load_model_folder(folder: str | Path) -> tuple[keras.Model, ModelCard]:
    """Load model.keras in Keras' safe mode and check it against its card. `folder`
    may also be a run name under models/."""
    folder = resolve_model_folder(folder)
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist; train one with `facelib train`")
    card = ModelCard.load(folder)
    path = folder / "model.keras"
    if not path.is_file():
        raise ModelError(f"{folder} has a card but no model.keras (training did not finish?)")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        raise ModelError(f"{path} is not a model facelib can load: {exc}") from exc
    found = (int(model.input_shape[1]), int(model.output_shape[-1]))
    expected = (card.input_size, card.embedding_dim)
    if found != expected:
        raise ModelError(
            f"{path} does not match its card: input {found[0]} px / {found[1]}-d embedding, "
            f"card says {expected[0]} px / {expected[1]}-d"
        )
    return model, card


def newest_model_folder() -> Path:
    """The most recently trained complete model under models/."""
    root = config.models_dir()
    folders = [p.parent for p in root.glob("*/model.keras") if (p.parent / CARD_FILE).is_file()]
    if not folders:
        raise ModelError(f"no trained model under {root}; make one with `facelib train` (or `make run`)")
    return max(folders, key=lambda f: (f / "model.keras").stat().st_mtime)


# ------------------------------------------------------------ training-only head


@keras.saving.register_keras_serializable(package="facelib")
class CosineClassifier(layers.Layer):
    """Cosine of the angle between each embedding and one learned centre per training
    identity (both normalised): the input of a margin-softmax loss such as CosFace.
    Used only while training; saved models end at the embedding."""

    def __init__(self, classes: int, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def build(self, input_shape):
        self.centres = self.add_weight(
            shape=(int(input_shape[-1]), self.classes), initializer="glorot_uniform", name="centres"
        )

    def call(self, embeddings):
        x = ops.normalize(ops.cast(embeddings, "float32"), axis=-1)
        w = ops.normalize(ops.cast(self.centres, "float32"), axis=0)
        return ops.matmul(x, w)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


def build_training_model(embedding_model: keras.Model, classes: int) -> keras.Model:
    """The embedding model with a CosineClassifier beside its output: two outputs,
    `embedding` (for the triplet loss) and `cosines` (for the margin-softmax loss)."""
    inputs = keras.Input(embedding_model.input_shape[1:], name="rgb")
    embedding = embedding_model(inputs)
    cosines = CosineClassifier(classes, name="cosines", dtype="float32")(embedding)
    return keras.Model(inputs, {"embedding": embedding, "cosines": cosines}, name="facelib_training")
