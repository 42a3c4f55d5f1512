"""The model card: what a model folder says about its model, read and written only here.

    card = ModelCard.load(folder)              # upgraded to the current schema on load
    card.threshold, card.crop_settings, card.training_crops
    ModelCard.update(folder, lambda c: ...)     # re-read, change, write back atomically

`card.json` sits beside model.keras. Training writes it (`save`); `facelib evaluate`
changes it (`update`), and nothing else does: verify, identify and the dashboard only
read it. `update` holds a lock file (.card.json.lock, left in the folder) while it
re-reads and writes, so two evaluations at once never lose each other's change.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from facelib.core.errors import FacelibError
from facelib.core.files import write_json_atomic

CARD_FILE = "card.json"
CARD_FORMAT = "facelib-model/1"  # says the file is a facelib card; `schema` says which layout
SCHEMA = 2


class ModelError(FacelibError):
    """A model folder is missing, incomplete or not facelib's."""


def _upgrade(data: dict, path: Path) -> dict:
    """A stored card in the current schema. Schema 1 (cards before the schema number)
    had the same keys; each key added since takes its default in `from_dict`."""
    schema = data.get("schema", 1)
    if type(schema) is not int or not 1 <= schema <= SCHEMA:
        raise ModelError(
            f"{path} was written by a newer facelib (card schema {schema!r}; this one reads up to "
            f"{SCHEMA}): update facelib to use this model"
        )
    return {**data, "schema": SCHEMA}


@dataclass
class ModelCard:
    """One model's facts. Training sets those up to `tensorflow`; `facelib evaluate`
    the LFW calibration (`threshold`, `metrics`, `crops`, `open_set`, `confidence`) and
    `evaluations`."""

    name: str
    input_size: int
    embedding_dim: int
    config: dict = field(default_factory=dict)  # the TrainConfig it was trained with
    crop_settings: dict = field(default_factory=dict)  # crop.CropSettings as stored
    validation_threshold: float | None = None  # chosen on the validation people at the end of training
    training_identities: list[str] = field(default_factory=list)
    validation_identities: list[str] = field(default_factory=list)
    training_images: int | None = None
    created: str | None = None
    data_manifest_sha256: str | None = None
    # What it was trained on, a record per source (LFW's training people, each folder of
    # people): kind, root, picture and people counts, the manifest's sha256, skips, the
    # validation people held out; and the model a fine-tune started from.
    data_sources: list[dict] = field(default_factory=list)
    parent_model: dict | None = None
    git_commit: str | None = None
    history: dict | None = None
    train_seconds_last_session: float | None = None
    machine: dict | None = None
    precision: str | None = None
    onednn: str | None = None
    plan: dict | None = None
    steps_run: int | None = None
    keras: str | None = None
    tensorflow: str | None = None
    # The LFW calibration (`facelib evaluate`): the View 1 threshold in use, the metrics of
    # the evaluation that set it, the crop folder it was measured on, and the impostor
    # curve of the validation people that open-set thresholds are read from.
    threshold: float | None = None
    metrics: dict | None = None
    crops: str | None = None
    open_set: dict | None = None
    # The LFW calibration's confidence mapping (confidence.ConfidenceMap.to_dict()), fitted
    # on the validation people's pairs by training or `facelib evaluate`; when none could
    # be fitted, the reason in `confidence_note`. Cards older than both: None, None.
    confidence: dict | None = None
    confidence_note: str | None = None
    evaluations: list[dict] = field(default_factory=list)
    # Keys this version does not know (a newer minor writer's): kept, written back.
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ reading

    @property
    def head(self) -> str:
        return self.config.get("head", "l2")

    @property
    def training_crops(self) -> str | None:
        """The crop folder under data/processed/ the model was trained on."""
        return self.config.get("crops")

    @property
    def folder_people(self) -> set[str]:
        """The people of the folders it (or a model it was fine-tuned from) trained on or
        held out from them, by folder name."""
        return {
            name
            for source in self.data_sources
            if source.get("kind") == "folder"
            for name in (*source.get("training_people", ()), *source.get("validation_people", ()))
        } | set((self.parent_model or {}).get("folder_people", ()))

    def source_people(self, validation: bool = True) -> list[tuple[str, list[str]]]:
        """(crop folder under data/processed/, people as named there) of each source it
        trained on: the held-out validation people, or with `validation=False` the trained
        ones. Folders' people are in their own crop folders, not in `training_crops`; a
        card without data_sources (LFW alone) has its people in `training_crops`."""
        which = "validation_people" if validation else "training_people"
        if not self.data_sources:
            names = self.validation_identities if validation else self.training_identities
            return [(self.training_crops, list(names))] if self.training_crops else []
        in_folders = {
            n for s in self.data_sources if s.get("kind") == "folder" for n in s.get("training_people", ())
        }
        found = []
        for source in self.data_sources:
            if source.get("kind") == "lfw" and not validation:
                # LFW's record lists its validation people only; its trained people are the rest.
                people = [n for n in self.training_identities if n not in in_folders]
            else:
                people = list(source.get(which, ()))
            if source.get("crops"):
                found.append((source["crops"], people))
        return found

    @property
    def seen_identities(self) -> set[str]:
        """Everyone the model trained or chose its threshold on, and everyone the model
        it was fine-tuned from had (its weights carry them)."""
        inherited = set((self.parent_model or {}).get("seen_identities", ()))
        return set(self.training_identities) | set(self.validation_identities) | inherited

    # ------------------------------------------------------------- (de)serialising

    def to_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        # Written only when set: a card of a model trained on LFW alone reads as before.
        for key in ("data_sources", "parent_model"):
            if not data[key]:
                del data[key]
        return {"format": CARD_FORMAT, "schema": SCHEMA, **self.extra, **data}

    @classmethod
    def from_dict(cls, data: dict, path: Path | str = CARD_FILE) -> ModelCard:
        path = Path(path)
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ModelError(f"{path} is not a facelib model card (format {found!r})")
        data = _upgrade(data, path)
        known = {f.name for f in fields(cls)} - {"extra"}
        missing = [k for k in ("name", "input_size", "embedding_dim") if k not in data]
        if missing:
            raise ModelError(f"{path} is damaged: it lacks {', '.join(missing)}")
        values = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known | {"format", "schema"}}
        return cls(**values, extra=extra)

    @classmethod
    def load(cls, folder: Path | str) -> ModelCard:
        path = Path(folder) / CARD_FILE
        if not path.is_file():
            raise ModelError(
                f"{folder} is not a facelib model folder (no {CARD_FILE}); train one with `facelib train`"
            )
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data, path)

    def save(self, folder: Path | str) -> Path:
        """Write card.json whole (atomic); training's, and `update`'s, only writer."""
        return write_json_atomic(Path(folder) / CARD_FILE, self.to_dict())

    @classmethod
    def update(cls, folder: Path | str, change: Callable[[ModelCard], Any]) -> ModelCard:
        """Re-read the card under a lock, apply `change` to it, write it back: a change
        made meanwhile by another process is kept, not overwritten by a stale copy."""
        try:
            with _locked(Path(folder)):
                card = cls.load(folder)
                change(card)
                card.save(folder)
        except PermissionError as exc:
            raise ModelError(f"{folder} is read-only: cannot change its card ({exc})") from exc
        return card


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the write itself stays atomic
        yield
        return
    with open(folder / f".{CARD_FILE}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
