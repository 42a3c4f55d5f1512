"""Where facelib keeps its files, and the presets that size each step.

Settings (environment variables):
  FACELIB_HOME    folder holding data/ and models/ (default: the project root)
  FACELIB_MIRROR  folder of mirrored downloads (e.g. lfw/, models/); when set,
                  nothing is downloaded and files are read from there instead
  FACELIB_PRESET  smoke | cpu | cpu-v1 | gpu (default cpu): sizes of the pipeline steps

Every other module asks this one for a path; none hard-codes its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from facelib.core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # facelib/core/config.py → the project


def home() -> Path:
    """Root folder of data/ and models/."""
    return Path(os.environ.get("FACELIB_HOME") or PROJECT_ROOT).expanduser().resolve()


def data_dir() -> Path:
    return home() / "data"


def raw_dir() -> Path:
    """Downloads and extracted archives; never modified after they are complete."""
    return data_dir() / "raw"


def processed_dir() -> Path:
    """Face crops and manifests made from raw data."""
    return data_dir() / "processed"


def models_dir() -> Path:
    return home() / "models"


def mirror() -> Path | None:
    """The mirror folder, or None when downloads come from the official sources."""
    value = os.environ.get("FACELIB_MIRROR")
    return Path(value).expanduser().resolve() if value else None


# Choices the CLI offers and the code checks, named once here (this module imports
# nothing heavy, so the CLI can build its parser without loading TensorFlow).
MINING_MODES = ("random", "batch_hard", "batch_semihard")
HEADS = ("l2", "relu")  # relu: the seed's unnormalised embedding, a baseline
SCHEDULES = ("cosine", "constant")
NO_FACE_POLICIES = ("fallback", "skip")
AUGMENTATIONS = ("basic", "strong", "lighting", "lighting-mild", "shadow-mild", "robust")  # pipeline.augment


@dataclass(frozen=True)
class Preset:
    """Sizes of each pipeline step; pick one with FACELIB_PRESET or --preset."""

    name: str
    preprocess_limit: int | None  # images to preprocess (None: all of them)
    train: dict = field(default_factory=dict)  # TrainConfig fields that differ from its defaults
    # `facelib evaluate` also scores View 2 unless told otherwise; its pairs need crops
    # of 7,701 images (minutes on 2 cores), too slow for the seconds-long smoke preset.
    evaluate_view2: bool = True
    # The detector of LFW's crops (`facelib preprocess --preset`): training reads the
    # folder they go to (`crops`, named by crops_folder).
    detector: str = "haar"


def crops_folder(
    variant: str, detector: str, size: int = 160, five_point: bool = False, equalize: bool = False
) -> str:
    """The name of a crop folder under data/processed/."""
    return f"{variant}-{detector}-{size}{'-5pt' if five_point else ''}{'-eq' if equalize else ''}"


# YuNet, not Haar: under side light and with a tilted head Haar misses many of the faces
# that YuNet finds (docs/recipes.md, "Haar loses the face the suite is about").
CPU_DETECTOR = "yunet"


# The one registry of presets. `cpu` is the recipe docs/recipes.md chose (64 px, a
# CosFace head beside batch-hard triplet loss with a hinge margin, P16 × K2, AdamW) in
# the precision the CPU runs fastest (mixed bfloat16 where it is in hardware), for a
# budget of minutes: the run times its own steps and fixes their number to fit
# (training.budget.Plan), on whatever CPU runs it. Basic augmentation: relighting a third
# of the pictures (`lighting-mild`, the preset until commit e723d88) was not shown to help
# under side light, and its runs averaged lower in validation and the suite, not
# significantly; so the simpler recipe (docs/recipes.md, "The preset back to basic
# augmentation"). `cpu-v1` is that study's baseline (112 px
# float32, soft margin, Adam, fixed steps; TrainConfig's defaults): the screening rows
# of bench/recipes.py start from it.
CPU_TRAINING_MINUTES = 40
CPU_RECIPE = dict(
    crops=crops_folder("lfw-deepfunneled", CPU_DETECTOR),
    input_size=64,
    precision="auto",
    soft_margin=False,
    classifier="cosface",
    p=16,
    k=2,
    optimizer="adamw",
    learning_rate=2e-3,
    weight_decay=5e-4,
    warmup_steps=200,
    augmentation="basic",
)
PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        "smoke",
        preprocess_limit=120,
        train=dict(
            p=4,
            k=2,
            steps_per_epoch=3,
            epochs=2,
            input_size=48,
            embedding_dim=32,
            max_identities=24,
            validation_pairs=16,
            warmup_steps=0,
            crops=crops_folder("lfw-deepfunneled", CPU_DETECTOR),
            augmentation=CPU_RECIPE["augmentation"],
        ),
        evaluate_view2=False,
        detector=CPU_DETECTOR,  # so that make run's test goes the cpu preset's way
    ),
    # 9 epochs of whatever length the budget buys (steps_per_epoch is used without one).
    "cpu": Preset(
        "cpu",
        preprocess_limit=None,
        train=dict(CPU_RECIPE, epochs=9, steps_per_epoch=500, minutes=CPU_TRAINING_MINUTES),
        detector=CPU_DETECTOR,
    ),
    "cpu-v1": Preset("cpu-v1", preprocess_limit=None),
    # The cpu recipe at a GPU's size: 112 px, 128 pictures a step, float16 (auto). Not measured
    # here (no GPU); the step count is a guess of about 20 minutes on one recent GPU.
    "gpu": Preset(
        "gpu",
        preprocess_limit=None,
        train=dict(
            CPU_RECIPE,  # precision auto: float16 on a GPU
            input_size=112,
            p=64,
            k=2,
            warmup_steps=500,
            steps_per_epoch=500,
            epochs=20,
        ),
        detector=CPU_DETECTOR,
    ),
}


def preset(name: str | None = None) -> Preset:
    """The named preset, else FACELIB_PRESET, else `cpu`."""
    name = name or os.environ.get("FACELIB_PRESET") or "cpu"
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
