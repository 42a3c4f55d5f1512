"""Enrolled people: named embeddings with a thumbnail, stored under FACELIB_HOME.

    gallery = Gallery.load(model_id="cpu-batch_hard-112@3f2a…")
    gallery.enroll("Ada", embedding, thumbnail_rgb)          # one more template of Ada
    gallery.enroll("Ada", embedding, thumbnail_rgb, replace=True)   # Ada's only template
    decision = gallery.identify(embedding, rule)   # identification.Decision: name or None,
                                                   # why, and the three nearest people

`gallery/gallery.json` holds names, embeddings and the id of the model that made each
one; thumbnails are JPEGs in gallery/thumbnails/, under names that are never reused.
Every write is atomic, each change starts from the file on disk (so the dashboard and
`facelib enroll` do not write over each other's people), and a save removes the
thumbnails/ files named as this module names them that no entry refers to. Entries made by another model
are kept and listed but flagged, never mixed into identification. A person may have
several entries (templates); `identification.OpenSetRule` decides who a probe is.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from facelib.core import config
from facelib.core.errors import FacelibError
from facelib.core.files import check_name, write_atomic
from facelib.recognition.card import ModelCard
from facelib.recognition.identification import Decision, OpenSetRule


@dataclass
class Entry:
    name: str
    embedding: list[float]
    model_id: str
    thumbnail: str  # path relative to gallery.json (thumbnails/…; older galleries: beside it)


THUMBNAILS = "thumbnails"
OUR_THUMBNAIL = re.compile(r"[A-Za-z0-9_.-]+-[0-9a-f]{12}\.jpg")


def _read_entries(folder: Path) -> list[Entry]:
    index = folder / "gallery.json"
    if not index.is_file():
        return []
    try:
        return [Entry(**e) for e in json.loads(index.read_text())["entries"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise FacelibError(f"{index} is damaged ({exc}); move it away to start a new gallery") from exc


def model_id(folder: Path, card: ModelCard) -> str:
    """Identifies the model that made an embedding: its name and creation time."""
    return f"{card.name or folder.name}@{card.created or '?'}"


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.strip())[:60].strip(".") or "person"


class Gallery:
    def __init__(self, folder: Path, model: str, entries: list[Entry] | None = None):
        self.folder, self.model_id, self.entries = folder, model, entries or []

    @classmethod
    def load(cls, model: str, folder: Path | None = None) -> Gallery:
        folder = folder or config.home() / "gallery"
        return cls(folder, model, _read_entries(folder))

    def _refresh(self) -> None:
        # Another process (the dashboard, `facelib enroll`) may have saved since this one
        # loaded: start each change from the file, so its entries are not written over.
        self.entries = _read_entries(self.folder)

    # ---------------------------------------------------------------- queries

    def usable(self) -> list[Entry]:
        """Entries made by the current model: the only ones identification compares."""
        return [e for e in self.entries if e.model_id == self.model_id]

    def foreign(self) -> list[Entry]:
        return [e for e in self.entries if e.model_id != self.model_id]

    def names(self) -> list[str]:
        """Enrolled people, each once, in enrolment order."""
        return list(dict.fromkeys(e.name for e in self.entries))

    def templates(self) -> dict[str, np.ndarray]:
        """Each usable person's embeddings, one row per enrolled picture."""
        rows: dict[str, list] = {}
        for e in self.usable():
            rows.setdefault(e.name, []).append(e.embedding)
        return {name: np.array(r, np.float64) for name, r in rows.items()}

    def identify(self, embedding: np.ndarray, rule: OpenSetRule) -> Decision:
        """Who the probe is among the usable people (reason "empty" when there are none)."""
        return rule.decide(embedding, self.templates())

    # ---------------------------------------------------------------- changes

    def enroll(
        self, name: str, embedding: np.ndarray, thumbnail_rgb: np.ndarray, replace: bool = False
    ) -> Entry:
        """Add a template of `name` (with `replace`, the person's templates made by this
        model are replaced by this one)."""
        name = check_name(name)
        self._refresh()
        (self.folder / THUMBNAILS).mkdir(parents=True, exist_ok=True)
        thumbnail = self._unused_thumbnail_name(name)
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(thumbnail_rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise FacelibError("could not encode the thumbnail")
        write_atomic(self.folder / thumbnail, encoded.tobytes())
        if replace:
            replaced = [e for e in self.entries if e.name == name and e.model_id == self.model_id]
            self._remove(replaced)
        entry = Entry(name, [float(x) for x in embedding], self.model_id, thumbnail)
        self.entries.append(entry)
        self.save()  # also removes the thumbnails of replaced entries
        return entry

    def _unused_thumbnail_name(self, name: str) -> str:
        # A random suffix: names made from a count collide once entries are deleted, and
        # different names can make the same safe file name ("Ann Lee", "Ann_Lee").
        while True:
            candidate = f"{THUMBNAILS}/{_safe_file_name(name)}-{uuid.uuid4().hex[:12]}.jpg"
            if (
                candidate not in {e.thumbnail for e in self.entries}
                and not (self.folder / candidate).exists()
            ):
                return candidate

    def delete(self, name: str) -> None:
        self._refresh()
        gone = [e for e in self.entries if e.name == name]
        if not gone:
            raise FacelibError(f"{name!r} is not in the gallery")
        self._remove(gone)
        self.save()

    def _remove(self, entries: list[Entry]) -> None:
        self.entries = [e for e in self.entries if e not in entries]
        for entry in entries:  # thumbnails of older galleries lie beside gallery.json
            if "/" not in entry.thumbnail:
                (self.folder / entry.thumbnail).unlink(missing_ok=True)

    def save(self) -> None:
        """Write gallery.json, then remove the thumbnails no entry refers to (those of
        deleted or replaced entries, and any a crash left between the two writes)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"entries": [asdict(e) for e in self.entries]}, indent=1)
        write_atomic(self.folder / "gallery.json", data)
        kept = {e.thumbnail for e in self.entries}
        for path in (self.folder / THUMBNAILS).glob("*.jpg"):
            # only files named as this class names them: the folder may hold the user's own
            if OUR_THUMBNAIL.fullmatch(path.name) and f"{THUMBNAILS}/{path.name}" not in kept:
                path.unlink(missing_ok=True)
