"""The pictures a run trains on: LFW's View 1 training people, folders of your own
people, or both, each source holding out its own validation people; and the model a
fine-tune starts from, checked against the run.

The run folder keeps each source's manifest (sources/<n>-<name>.csv: path, person,
sha256) from its first start: a resumed run trains on the pictures it started with,
and its card records each manifest's hash.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from facelib.core import config
from facelib.core.errors import ConfigError
from facelib.data import sources
from facelib.data.crop import CropSettings
from facelib.data.pipeline import FaceSet, training_split, validation_pairs
from facelib.recognition.card import ModelCard
from facelib.training.training_config import FREEZE_POINTS, TrainConfig

SOURCES = "sources"  # the run folder's manifests


@dataclass(frozen=True)
class Faces:
    """The run's pictures: the training people's, the held-out validation people's, and
    the validation pairs (left, right, same) scored after each epoch."""

    all_train: FaceSet
    train: FaceSet  # those the loss can use
    validation: FaceSet
    pairs: tuple
    records: tuple = ()  # each source's record for the card
    warnings: tuple = ()

    def describe(self, cfg: TrainConfig) -> str:
        singles = int((self.train.counts == 1).sum())
        kinds = ", ".join(f"{r['name']} ({r['trained_people']:,} people)" for r in self.records)
        return (
            f"{self.train.images:,} images of {len(self.train.identities):,} identities"
            f"{f' ({singles:,} with one picture)' if singles else ''}, "
            f"{len(self.validation.identities)} held out for validation; sources: {kinds}"
        )


def gather(cfg: TrainConfig, crops_root: Path | None, run_path: Path, chief: bool, resumed: bool) -> Faces:
    """Every source's people, split, merged (folder people labelled `<folder>/<name>`,
    so two sources' namesakes stay two classes)."""
    train, all_train, validation, records, warnings = [], [], [], [], []
    if cfg.lfw_people:
        assert crops_root is not None
        split = training_split(
            crops_root, cfg.validation_fraction, cfg.split_seed, cfg.max_identities, cfg.single_picture_people
        )
        all_train.append(split.train)
        train.append(split.train.with_at_least(1 if cfg.single_picture_people else 2))
        validation.append(split.validation)
        records.append(_lfw_record(split, crops_root, run_path, chief))
    settings = crop_policy(cfg)
    if settings.equalize and cfg.augmentation not in ("basic", "strong"):
        # The pipeline relights the stored crops, which are equalised already: it would
        # train on shadows that verify, equalising last, never embeds.
        warnings.append(
            f"augmentation {cfg.augmentation!r} relights crops that are equalised already "
            "(verify equalises after the light); --set augmentation=basic trains as verify sees faces"
        )
    for number, folder in enumerate(cfg.images, 1):
        manifest = run_path / SOURCES / f"{number}-{Path(folder).name}.csv"
        listing = _listing(Path(folder), manifest, chief, resumed)
        source = sources.folder_source(
            listing,
            settings,
            cfg.split_seed,
            cfg.validation_fraction,
            sources.text_sha256(listing.rows),
            cfg.single_picture_people,
        )
        if source.singles_left_out:
            warnings.append(
                f"{source.name}: {source.singles_left_out:,} people with one picture left out "
                "(--set single_picture_people=true trains on them as classes and negatives)"
            )
        warnings += [f"{source.name}: {w}" for w in source.record["warnings"]]
        warnings += [f"{source.name}: {line}" for line in source.skips.lines()]
        all_train.append(source.train)
        train.append(source.train.with_at_least(1 if cfg.single_picture_people else 2))
        validation.append(source.validation)
        records.append({"name": source.name, **source.record})
    merged_validation = sources.merge(validation)
    pairs = validation_pairs(merged_validation, cfg.validation_pairs, cfg.split_seed)
    return Faces(
        sources.merge(all_train),
        sources.merge(train),
        merged_validation,
        pairs,
        tuple(records),
        tuple(warnings),
    )


def _listing(folder: Path, manifest: Path, chief: bool, resumed: bool) -> sources.Listing:
    """A fresh start lists the folder and writes its manifest; a resumed run reads the
    manifest it started with (the folder may have changed since: it trains on the same)."""
    if resumed and manifest.is_file():
        rows = sources.read_manifest_file(manifest)
        return sources.Listing(folder, rows, sources.Skips())
    listing = sources.list_folder(folder)
    if chief:
        manifest.parent.mkdir(parents=True, exist_ok=True)
        sources.write_manifest(manifest, listing.rows)
    return listing


def _lfw_record(split, crops_root: Path, run_path: Path, chief: bool) -> dict:
    """LFW's training people as a manifest too, so every source is recorded alike."""
    rows = [
        (Path(p).relative_to(crops_root).as_posix(), name, "")
        for faces in (split.train, split.validation)
        for name, start, n in zip(faces.identities, faces.offsets, faces.counts, strict=True)
        for p in faces.paths[start : start + n]
    ]
    manifest = run_path / SOURCES / "0-lfw.csv"
    digest = sources.write_manifest(manifest, rows) if chief else sources.text_sha256(rows)
    return {
        "name": sources.LFW,
        "kind": "lfw",
        "root": "LFW View 1 training people (peopleDevTrain.txt)",
        "crops": crops_root.name,
        "manifest_sha256": digest,
        "pictures": len(rows),
        "people": len(split.train.identities) + len(split.validation.identities),
        "trained_people": len(split.train.identities),
        "trained_pictures": split.train.images,
        "validation_people": list(split.validation.identities),
        "skipped": {},
    }


# ------------------------------------------------------------------- crop policy


def crop_policy(cfg: TrainConfig) -> CropSettings:
    """The crop policy of `cfg.crops`: its settings.json where the folder exists, else
    read from its name (<variant>-<detector>-<size>[-5pt][-eq]), so folders are cropped as
    that LFW crop folder was, or would be."""
    stored = config.processed_dir() / cfg.crops / "settings.json"
    if stored.is_file():
        return CropSettings.from_dict(json.loads(stored.read_text()))
    parts = cfg.crops.split("-")
    equalize = parts[-1] == "eq"
    if equalize:
        parts = parts[:-1]
    five_point = parts[-1] == "5pt"
    if five_point:
        parts = parts[:-1]
    try:
        size, detector = int(parts[-1]), parts[-2]
    except (ValueError, IndexError) as exc:
        raise ConfigError(
            f"crops {cfg.crops!r}: no such crop folder, and its name does not say the crop policy "
            "(<variant>-<detector>-<size>[-5pt][-eq]); pass --crops NAME of an existing one"
        ) from exc
    return CropSettings(detector=detector, size=size, five_point=five_point, equalize=equalize)


def crop_record(settings: CropSettings, crops_root: Path | None) -> dict:
    """The crop policy as the card states it (settings.json's, with the variant, when
    LFW's crops are used)."""
    if crops_root is not None and (crops_root / "settings.json").is_file():
        stored = json.loads((crops_root / "settings.json").read_text())
        return {**stored, **asdict(CropSettings.from_dict(stored))}
    return asdict(settings)


# ------------------------------------------------------------------- fine-tuning


def parent_card(cfg: TrainConfig) -> tuple[Path, ModelCard] | None:
    """The model a fine-tune starts from (`weights` naming a facelib model folder),
    refused when it does not fit the run: another input size, embedding or head, or
    another crop policy (its pictures would be cropped otherwise than the new ones)."""
    if cfg.weights in (None, "imagenet"):
        if cfg.freeze_until is not None:
            raise ConfigError("freeze_until goes with a model to fine-tune (--init-from)")
        return None
    folder = Path(cfg.weights)
    folder = folder.parent if folder.is_file() else folder
    card = ModelCard.load(folder)
    mismatches = [
        f"{what} {theirs} (this run: {ours})"
        for what, theirs, ours in [
            ("input size", card.input_size, cfg.input_size),
            ("embedding size", card.embedding_dim, cfg.embedding_dim),
            ("head", card.head, cfg.head),
        ]
        if theirs != ours
    ]
    if card.crop_settings:
        theirs, ours = CropSettings.from_dict(card.crop_settings), crop_policy(cfg)
        if theirs != ours:
            changed = [k for k, v in asdict(theirs).items() if getattr(ours, k) != v]
            mismatches.append(
                "crop policy "
                + ", ".join(f"{k} {getattr(theirs, k)} (this run: {getattr(ours, k)})" for k in changed)
            )
    if mismatches:
        raise ConfigError(
            f"cannot fine-tune {folder.name}: it was trained with {'; '.join(mismatches)}. "
            "A fine-tune keeps the model's input size and crop policy: leave --input-size and --crops "
            "out (they are taken from the model), or train a new model"
        )
    return folder, card


def parent_record(folder: Path, card: ModelCard, cfg: TrainConfig) -> dict:
    return {
        "name": card.name,
        "folder": str(folder.resolve()),
        "card_sha256": sources.file_sha256(folder / "card.json"),
        "data_manifest_sha256": card.data_manifest_sha256,
        "data_sources": [
            {k: v for k, v in s.items() if k not in ("validation_people", "training_people", "warnings")}
            for s in card.data_sources
        ],
        "freeze_until": cfg.freeze_until,
        # Everyone the parent (and its own parents) saw, by name: the fine-tune has seen
        # them too, so `facelib evaluate` leaves their LFW pairs out and checks its folders.
        "seen_identities": sorted(card.seen_identities),
        "folder_people": sorted(card.folder_people),
    }


def frozen_prefixes(freeze_until: str | None) -> tuple[str, ...]:
    """ResNet50 layer-name prefixes frozen up to and including `freeze_until`."""
    if freeze_until is None:
        return ()
    stages = ["conv1_", "pool1_", "conv2_", "conv3_", "conv4_", "conv5_"]
    last = {"stem": 2, "stage2": 3, "stage3": 4, "stage4": 5, "stage5": 6}[freeze_until]
    assert set(FREEZE_POINTS) == {"stem", "stage2", "stage3", "stage4", "stage5"}
    return tuple(stages[:last])
