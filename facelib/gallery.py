"""Enrolled people: named embeddings with a thumbnail, stored under FACELIB_HOME.

    gallery = Gallery.load(model_id="cpu-batch_hard-112@3f2a…")
    gallery.enroll("Ada", embedding, thumbnail_rgb)
    identity = gallery.identify(embedding, threshold)   # Identity(name or None, distance)

`gallery/gallery.json` holds names, embeddings and the id of the model that made each
one; thumbnails are JPEGs beside it. Every write is atomic. Entries made by another
model are kept and listed but flagged, never mixed into identification.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facelib import config
from facelib.decision import embedding_distance, same_person
from facelib.errors import FacelibError
from facelib.files import write_atomic


@dataclass(frozen=True)
class Identity:
    """Who a probe is: the nearest enrolled person's name when within the threshold,
    else None (unknown), and the distance to that nearest person either way."""

    name: str | None
    distance: float


@dataclass
class Entry:
    name: str
    embedding: list[float]
    model_id: str
    thumbnail: str  # file name beside gallery.json


def model_id(folder: Path, card: dict) -> str:
    """Identifies the model that made an embedding: its name and creation time."""
    return f"{card.get('name', folder.name)}@{card.get('created', '?')}"


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip())[:60] or "person"


class Gallery:
    def __init__(self, folder: Path, model: str, entries: list[Entry] | None = None):
        self.folder, self.model_id, self.entries = folder, model, entries or []

    @classmethod
    def load(cls, model: str, folder: Path | None = None) -> Gallery:
        folder = folder or config.home() / "gallery"
        index = folder / "gallery.json"
        entries = []
        if index.is_file():
            try:
                entries = [Entry(**e) for e in json.loads(index.read_text())["entries"]]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise FacelibError(
                    f"{index} is damaged ({exc}); move it away to start a new gallery"
                ) from exc
        return cls(folder, model, entries)

    # ---------------------------------------------------------------- queries

    def usable(self) -> list[Entry]:
        """Entries made by the current model: the only ones identification compares."""
        return [e for e in self.entries if e.model_id == self.model_id]

    def foreign(self) -> list[Entry]:
        return [e for e in self.entries if e.model_id != self.model_id]

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def identify(self, embedding: np.ndarray, threshold: float) -> Identity | None:
        """The nearest usable enrolled person, named only when `same_person` says so;
        None when nobody usable is enrolled (there is no one to compare with)."""
        usable = self.usable()
        if not usable:
            return None
        distances = embedding_distance(np.array([e.embedding for e in usable]), embedding)
        nearest = int(np.argmin(distances))
        distance = float(distances[nearest])
        return Identity(usable[nearest].name if same_person(distance, threshold) else None, distance)

    # ---------------------------------------------------------------- changes

    def enroll(self, name: str, embedding: np.ndarray, thumbnail_rgb: np.ndarray) -> Entry:
        import cv2

        name = name.strip()
        if not name:
            raise FacelibError("give the person a name before enrolling")
        self.folder.mkdir(parents=True, exist_ok=True)
        thumbnail = self._unused_thumbnail_name(name)
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(thumbnail_rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise FacelibError("could not encode the thumbnail")
        write_atomic(self.folder / thumbnail, encoded.tobytes())
        # re-enrolling a name with the same model replaces that person's entry
        replaced = [e for e in self.entries if e.name == name and e.model_id == self.model_id]
        self.entries = [e for e in self.entries if e not in replaced]
        entry = Entry(name, [float(x) for x in embedding], self.model_id, thumbnail)
        self.entries.append(entry)
        self.save()
        for old in replaced:
            (self.folder / old.thumbnail).unlink(missing_ok=True)
        return entry

    def _unused_thumbnail_name(self, name: str) -> str:
        # Different names can make the same safe file name ("Ann Lee", "Ann_Lee"):
        # count up until no entry and no file has it, so no thumbnail is overwritten.
        taken = {e.thumbnail for e in self.entries}
        number = len(self.entries)
        while (candidate := f"{_safe_file_name(name)}-{number}.jpg") in taken or (
            self.folder / candidate
        ).exists():
            number += 1
        return candidate

    def delete(self, name: str) -> None:
        gone = [e for e in self.entries if e.name == name]
        if not gone:
            raise FacelibError(f"{name!r} is not in the gallery")
        self.entries = [e for e in self.entries if e.name != name]
        self.save()
        for entry in gone:
            (self.folder / entry.thumbnail).unlink(missing_ok=True)

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"entries": [asdict(e) for e in self.entries]}, indent=1)
        write_atomic(self.folder / "gallery.json", data)
