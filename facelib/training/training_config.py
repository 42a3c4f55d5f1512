"""The settings of a training run, without TensorFlow: the CLI, `facelib doctor` and
the plan printed before `make run` read them before anything heavy loads.

    from facelib.training.training_config import TrainConfig
    TrainConfig.preset("cpu", settings={"minutes": 20})
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from dataclasses import asdict, dataclass

from facelib.core import config
from facelib.core.config import MINING_MODES
from facelib.core.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    p: int = 8  # identities per batch
    k: int = 4  # images per identity
    steps_per_epoch: int = 180
    epochs: int = 8
    learning_rate: float = 1e-3
    schedule: str = "cosine"  # or "constant"
    warmup_steps: int = 100
    margin: float = 0.2
    soft_margin: bool = True  # batch_hard only: log(1 + exp(d_ap − d_an)), no margin to tune
    mining: str = "batch_hard"  # random | batch_hard | batch_semihard
    input_size: int = 112
    embedding_dim: int = 128
    # Dropout on the pooled features before the embedding layer (training only), after
    # ArcFace's BN-Dropout-FC-BN output block; 0: none.
    embedding_dropout: float = 0.0
    head: str = "l2"  # l2 | relu (the seed's unnormalised embedding, a baseline)
    weights: str | None = None  # None (scratch) | "imagenet" | a facelib model folder
    seed: int = 0  # weights' initialisation, batches, augmentation
    # The people held out for validation, their pairs and the max_identities subset;
    # None: `seed`. Fixed while `seed` varies, runs of several seeds are scored on the
    # same people.
    validation_seed: int | None = None
    validation_fraction: float = 0.1
    validation_pairs: int = 300  # same + as many different pairs, each epoch
    max_identities: int | None = None  # a subset of training identities (smoke tests)
    # auto: mixed bfloat16 where the CPU has it in hardware, float16 on a GPU, else
    # float32; bfloat16 on a CPU that only emulates it is refused (resolve_precision).
    precision: str = "float32"  # auto | float32 | bfloat16 | float16
    # A time budget: after a short timed calibration, the run fixes its number of steps
    # (epochs × steps per epoch, epochs kept) to train for about this long (plan.json).
    minutes: float | None = None
    # A margin-softmax head over the training identities, beside the triplet loss:
    # "none" or "cosface" (training only; the saved model still ends at the embedding).
    classifier: str = "none"
    classifier_scale: float = 30.0
    classifier_margin: float = 0.35
    classifier_weight: float = 1.0
    optimizer: str = "adam"  # adam | adamw
    augmentation: str = "basic"  # basic | strong | lighting[-mild] | shadow-mild | robust (pipeline.augment)
    weight_decay: float = 0.0  # adamw only
    crops: str = "lfw-deepfunneled-haar-160"  # folder under data/processed/
    # View 1's training people with one picture (2,854) as well: classes of the CosFace
    # head and negatives, their positive pair one picture augmented twice (pipeline.pk_indices).
    single_picture_people: bool = False
    # Folders of your own people (FOLDER/<Person>/*.jpg), trained on as well as LFW's View 1
    # training people, or instead of them (lfw_people false); each holds out its own
    # validation people (facelib.data.sources).
    images: tuple[str, ...] = ()
    lfw_people: bool = True
    # Fine-tuning (weights = a facelib model folder): the backbone's stages up to and
    # including this one ("stem", "stage2" … "stage5") are frozen.
    freeze_until: str | None = None
    # The embedding's weights after every epoch, kept under epochs/ in the run folder
    # (studies of which epoch, or average of epochs, to keep: bench/epoch_choice.py).
    keep_epochs: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", tuple(self.images))  # a list when read back from JSON
        if self.mining not in MINING_MODES:
            raise ConfigError(f"mining must be one of {', '.join(MINING_MODES)}, not {self.mining!r}")
        if self.p < 2 or self.k < 2:
            raise ConfigError("a P×K batch needs P ≥ 2 identities and K ≥ 2 images each")
        if self.head not in config.HEADS:
            raise ConfigError(f"head must be one of {', '.join(config.HEADS)}, not {self.head!r}")
        if self.schedule not in config.SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(config.SCHEDULES)}, not {self.schedule!r}")
        if self.classifier not in ("none", "cosface"):
            raise ConfigError(f"classifier must be 'none' or 'cosface', not {self.classifier!r}")
        if self.augmentation not in config.AUGMENTATIONS:
            raise ConfigError(
                f"augmentation must be one of {', '.join(config.AUGMENTATIONS)}, not {self.augmentation!r}"
            )
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optimizer must be 'adam' or 'adamw', not {self.optimizer!r}")
        if self.input_size < 32:
            raise ConfigError(f"input size {self.input_size} is too small (ResNet50 needs ≥ 32 px)")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, not {self.epochs}")
        if self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be at least 1, not {self.steps_per_epoch}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be above 0, not {self.learning_rate}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be 0 or more, not {self.weight_decay}")
        if self.weight_decay > 0 and self.optimizer != "adamw":
            raise ConfigError(
                f"weight_decay {self.weight_decay} needs optimizer adamw (optimizer is {self.optimizer!r}): "
                "set optimizer=adamw, or weight_decay=0"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.single_picture_people and self.mining == "random":
            raise ConfigError(
                "single_picture_people needs P×K batches (mining batch_hard or batch_semihard): "
                "a random triplet needs two pictures of its person"
            )
        if not self.lfw_people and not self.images:
            raise ConfigError("no training data: give a folder of people (--images) or keep LFW's people")
        if self.freeze_until is not None and self.freeze_until not in FREEZE_POINTS:
            raise ConfigError(
                f"freeze_until must be one of {', '.join(FREEZE_POINTS)}, not {self.freeze_until!r}"
            )
        if not 0 <= self.embedding_dropout < 1:
            raise ConfigError(
                f"embedding_dropout must be at least 0 and below 1, not {self.embedding_dropout}"
            )
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"minutes must be above 0, not {self.minutes}")

    @property
    def split_seed(self) -> int:
        """The seed that picks the validation people and pairs."""
        return self.seed if self.validation_seed is None else self.validation_seed

    @staticmethod
    def preset(name: str, settings: dict | None = None, **overrides) -> TrainConfig:
        """The preset's settings (config.PRESETS), then `overrides` that are not None
        (None: keep the preset's), then `settings` as given (from --set, where None
        is a value: `--set max_identities=none` lifts the preset's limit)."""
        base = upgrade_settings(
            {**config.preset(name).train, **{k: v for k, v in overrides.items() if v is not None}}
        )
        settings = {**base, **upgrade_settings(settings or {}, base.get("precision", "float32"))}
        unknown = set(settings) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return TrainConfig(**settings)

    @staticmethod
    def parse_settings(items: list[str]) -> dict:
        """`["p=16", "bfloat16=true", "max_identities=none"]` → {"p": 16, "bfloat16": True,
        "max_identities": None}, typed by the fields' annotations ("none" is None only
        where a field may be None)."""
        kinds = {**_field_kinds(), **{key: (bool, False) for key in LEGACY_PRECISION}}
        settings = {}  # legacy switches stay as given: preset() knows the precision they change
        for item in items:
            key, sep, text = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in kinds:
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(kinds)}")
            kind, optional = kinds[key]
            try:
                if optional and text.strip().lower() in ("", "none"):
                    value = None
                elif kind is bool:
                    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(text)
                    value = text.lower() in ("true", "1", "yes")
                else:
                    value = kind(text)
            except ValueError as exc:
                what = f"{kind.__name__} or none" if optional else kind.__name__
                raise ConfigError(f"--set {item!r}: {text!r} is not a valid {what}") from exc
            settings[key] = value
        return settings

    @property
    def batch_images(self) -> int:
        return 3 * max(1, self.p * self.k // 3) if self.mining == "random" else self.p * self.k


# ResNet50's layers by stage: the stem (conv1, pool1), then conv2_* … conv5_*.
FREEZE_POINTS = ("stem", "stage2", "stage3", "stage4", "stage5")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Settings of runs made before `precision`: each true one names a precision.
LEGACY_PRECISION = {"bfloat16": "bfloat16", "mixed_precision": "float16"}


def upgrade_settings(settings: dict, base_precision: str = "float32") -> dict:
    """Settings with the older precision switches (`bfloat16`, `mixed_precision`, as in
    config.json files of earlier runs and `--set bfloat16=true`) said as `precision`;
    a switch set to false turns off that precision (or auto, which may choose it)."""
    settings = dict(settings)
    for key, precision in LEGACY_PRECISION.items():
        if key in settings:
            if settings.pop(key):
                settings["precision"] = precision
            elif settings.get("precision", base_precision) in (precision, "auto"):
                settings["precision"] = "float32"
    return settings


@functools.cache
def _field_kinds() -> dict[str, tuple[type, bool]]:
    """Each TrainConfig field's type and whether it may be None, from its annotation
    (`int | None` → (int, True))."""
    kinds = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        args = typing.get_args(hint)
        if typing.get_origin(hint) is tuple:  # a list of folders: flags, not --set
            continue
        if args:  # a union: X | None
            (kind,) = [a for a in args if a is not type(None)]
            kinds[name] = (kind, type(None) in args)
        else:
            kinds[name] = (hint, False)
    return kinds


def config_differences(saved: dict, cfg: TrainConfig, auto_precision: str | None = None) -> list[str]:
    """The settings in which a run's saved config.json differs from `cfg`, as
    "epochs 8 → 20"; a setting the saved file lacks (written before it existed)
    counts as its default. Three are not differences: keep_epochs, precision auto against the one the
    run was made in when auto picks that same one here (`auto_precision`), and a budget
    against a run made before budgets existed (it keeps its fixed steps)."""
    requested = json.loads(json.dumps(asdict(cfg)))
    defaults = json.loads(json.dumps(asdict(TrainConfig())))
    before_budgets = "minutes" not in saved
    # as config.json holds them (lists, not tuples), whether read from it or given
    saved = json.loads(json.dumps({**defaults, **upgrade_settings(saved)}))
    if requested["precision"] == "auto" and saved["precision"] == auto_precision:
        saved["precision"] = "auto"
    if before_budgets:
        saved["minutes"] = requested["minutes"]
    saved["keep_epochs"] = requested["keep_epochs"]  # what is kept, not how it trains

    def show(value) -> str:
        return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    return [
        f"{key} {show(saved.get(key))} → {show(requested.get(key))}"
        for key in [*requested, *(k for k in saved if k not in requested)]
        if saved.get(key) != requested.get(key)
    ]


def fine_tune_settings(base: TrainConfig, parent: dict) -> dict:
    """A fine-tune's short schedule, from the preset's: a tenth of the learning rate, a
    third of the epochs, a quarter of the budget, little warm-up, no CosFace head and basic
    augmentation; and the shape of the model it starts from (`parent`: its card's
    input_size, embedding_dim, config), whose crop policy (`crops`) it keeps."""
    settings = {
        "learning_rate": base.learning_rate / 10,
        "epochs": max(1, base.epochs // 3),
        "warmup_steps": min(base.warmup_steps, 50),
        "input_size": parent["input_size"],
        "embedding_dim": parent["embedding_dim"],
        "head": parent.get("config", {}).get("head", base.head),
        # the triplet loss alone: a new CosFace head starts at random, and its first
        # gradients undid what the parent had learnt (docs/recipes.md, "Fine-tuning on a
        # folder of people")
        "classifier": "none",
        # the augmentation the fine-tunes were measured with, whatever the preset's
        "augmentation": "basic",
    }
    if base.minutes is not None:
        settings["minutes"] = base.minutes / 4
    crops = parent.get("config", {}).get("crops")
    if crops:
        settings["crops"] = crops
    return settings


def default_run_name(cfg: TrainConfig, preset: str) -> str:
    return f"{preset}-{cfg.mining}-{cfg.input_size}"
