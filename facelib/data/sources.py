"""Training data from several sources: LFW's View 1 training people and folders of
your own people (FOLDER/<Person>/<picture>.jpg), each held out for validation apart.

    listing = list_folder("photos/")              # clear errors, counted skips, content hashes
    source = folder_source(listing, settings, seed=0, validation_fraction=0.1)
    faces = merge([source.train, other.train])    # one FaceSet, identities kept apart per source

A source's pictures become a *manifest* (path, person, sha256: a CSV written once into
the run folder and hashed), cropped with the model's crop policy into the crop folder
`preprocess --images` uses (data/processed/images-<folder>-<detector>-<size>/), so the
crops are made once and a rerun reuses them. Everything here is linear in the pictures:
one pass to list, one dict to group by person, one sort of the people (bench/
manifest_scaling.py measures it); the pictures are read from disk by tf.data while
training (pipeline.training_dataset), never held in memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from facelib.core.errors import FacelibError
from facelib.core.files import write_atomic, write_json_atomic
from facelib.data.crop import CropSettings
from facelib.data.folders import IMAGE_SUFFIXES
from facelib.data.preprocess import output_dir, preprocess_dataset, read_manifest

if TYPE_CHECKING:
    from facelib.data.pipeline import FaceSet

# Listing and checking a folder needs no TensorFlow (pipeline loads it): FaceSet is
# imported where one is made.
USABLE = ("detected", "multiple")  # as pipeline.USABLE: fallback crops are guesses

MANIFEST_FIELDS = ("path", "person", "sha256")
LFW = "lfw"  # the source name of LFW's View 1 training people
# Why a picture of a folder is not trained on (each counted, with examples).
NOT_A_PICTURE = "not a picture"
NOT_JPEG = "not .jpg (crops are made of .jpg pictures only, as `preprocess --images` does)"
OUTSIDE = "outside the folder (a link that leads out of it)"
LOOSE = "not in a person folder"
NESTED = "a folder inside a person folder"
DUPLICATE_ACROSS = "the same picture under several people (its person is unknown)"
DUPLICATE_WITHIN = "the same picture twice for one person (one kept)"
NO_FACE = "no face found"
UNREADABLE = "could not be read"


# ------------------------------------------------------------------------ listing


@dataclass
class Skips:
    """Pictures (or entries) left out, counted by reason, with a few examples each."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, what: str, n: int = 1) -> None:
        self.counts[reason] += n
        shown = self.examples.setdefault(reason, [])
        if len(shown) < 3:
            shown.append(what)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        return [
            f"{n:,} left out: {reason} (e.g. {', '.join(self.examples[reason])})"
            for reason, n in sorted(self.counts.items())
        ]

    def to_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


@dataclass
class Listing:
    """A folder of people as a manifest: (path relative to root, person, sha256) rows,
    sorted, and what was left out."""

    root: Path
    rows: list[tuple[str, str, str]]
    skips: Skips
    warnings: list[str] = field(default_factory=list)

    @property
    def people(self) -> int:
        return len({person for _, person, _ in self.rows})

    def summary(self) -> str:
        return f"{self.root}: {self.people:,} people, {len(self.rows):,} pictures"


def _inside(path: Path, real_root: Path) -> bool:
    return path.resolve().is_relative_to(real_root)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def list_folder(folder: str | Path) -> Listing:
    """Every .jpg of `folder/<Person>/`, hashed, in one pass. Errors: no such folder, an
    empty one, one without person folders, one with no usable picture. Skips, counted:
    files that are not pictures (or not .jpg), loose pictures, links leading out of the
    folder, and duplicate pictures (by content): the same picture under two people is
    dropped everywhere, since its person is unknown."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise FacelibError(f"{root} does not exist")
    if not root.is_dir():
        raise FacelibError(f"{root} is not a folder: give a folder with one subfolder per person")
    real_root = root.resolve()
    entries = sorted((e for e in os.scandir(root) if not e.name.startswith(".")), key=lambda e: e.name)
    if not entries:
        raise FacelibError(f"{root} is empty: put each person's pictures in a subfolder named after them")
    skips, warnings = Skips(), []
    found: list[tuple[str, str, str]] = []
    people = 0
    for entry in entries:
        path = Path(entry.path)
        if not entry.is_dir():
            skips.add(LOOSE, entry.name)
            continue
        people += 1
        if not _inside(path, real_root):
            skips.add(OUTSIDE, f"{entry.name}/")
            continue
        pictures = 0
        for item in sorted(os.scandir(path), key=lambda e: e.name):
            if item.name.startswith("."):
                continue  # .DS_Store and the like: nobody's picture
            name = f"{entry.name}/{item.name}"
            where = Path(item.path)
            if item.is_dir():
                skips.add(NESTED, name)
            elif where.suffix.lower() not in IMAGE_SUFFIXES:
                skips.add(NOT_A_PICTURE, name)
            elif not _inside(where, real_root):
                skips.add(OUTSIDE, name)
            elif where.suffix != ".jpg":
                skips.add(NOT_JPEG, name)
            else:
                found.append((name, entry.name, _sha256(where)))
                pictures += 1
        if not pictures:
            warnings.append(f"{entry.name}: no usable picture in {path}; left out")
    if not people:
        raise FacelibError(
            f"{root} has no person folders: put each person's pictures in a subfolder named "
            "after them (Ada/1.jpg, Ada/2.jpg, Grace/1.jpg)"
        )
    rows = _without_duplicates(found, skips)
    if not rows:
        raise FacelibError(
            f"no usable picture in the person folders of {root}"
            + (f" ({'; '.join(skips.lines())})" if skips.total else "")
        )
    return Listing(root, rows, skips, warnings)


def _without_duplicates(rows: list[tuple[str, str, str]], skips: Skips) -> list[tuple[str, str, str]]:
    """One pass over the hashes (a dict): a picture under several people is dropped
    wherever it is; a second copy under the same person is dropped, the first kept."""
    owners: dict[str, set[str]] = {}
    for _, person, digest in rows:
        owners.setdefault(digest, set()).add(person)
    kept, seen = [], set()
    for row in rows:
        path, _, digest = row
        if len(owners[digest]) > 1:
            skips.add(DUPLICATE_ACROSS, path)
        elif digest in seen:
            skips.add(DUPLICATE_WITHIN, path)
        else:
            seen.add(digest)
            kept.append(row)
    return kept


# ----------------------------------------------------------------------- manifest


def manifest_text(rows: list[tuple[str, str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS)
    writer.writerows(rows)
    return out.getvalue()


def text_sha256(rows: list[tuple[str, str, str]]) -> str:
    """The sha256 of the manifest file these rows make."""
    return hashlib.sha256(manifest_text(rows).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    return _sha256(path)


def write_manifest(path: Path, rows: list[tuple[str, str, str]]) -> str:
    """Write the manifest (atomically) and return its sha256."""
    text = manifest_text(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)
    return hashlib.sha256(text.encode()).hexdigest()


def _safe_relative(name: str, manifest: Path) -> str:
    """A manifest path must stay inside its folder: relative, without '..'."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name or len(pure.parts) != 2:
        raise FacelibError(
            f"{manifest} names {name!r}, which is not PERSON/PICTURE inside the folder: "
            "a manifest may not lead out of its folder"
        )
    return name


def read_manifest_file(path: Path) -> list[tuple[str, str, str]]:
    """The rows of a stored manifest, each path checked to stay inside its folder."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = tuple(next(reader, ()))
            if header != MANIFEST_FIELDS:
                raise FacelibError(f"{path} is not a facelib manifest (header {header})")
            rows = [(_safe_relative(r[0], path), r[1], r[2]) for r in reader]
    except (OSError, IndexError, csv.Error) as exc:
        raise FacelibError(f"{path} cannot be read as a manifest ({exc})") from exc
    for name, person, _ in rows:
        if PurePosixPath(name).parts[0] != person:
            raise FacelibError(f"{path}: {name!r} is not in the folder of {person!r}")
    return rows


# ----------------------------------------------------------------------- sources


@dataclass
class Source:
    """One source's training and validation people, and what to record of it."""

    name: str
    train: FaceSet
    validation: FaceSet
    record: dict  # for the model card: kind, root, counts, manifest hash, skips
    skips: Skips = field(default_factory=Skips)
    singles_left_out: int = 0


def _offsets(counts: np.ndarray) -> np.ndarray:
    return (np.cumsum(counts) - counts).astype(np.int64)


def faceset(paths_by_person: dict[str, list[str]], label_prefix: str = "") -> FaceSet:
    """A FaceSet of these people (sorted) in one pass; `label_prefix` keeps people of
    different sources apart when two use the same name."""
    from facelib.data.pipeline import FaceSet

    names = sorted(paths_by_person)
    counts = np.array([len(paths_by_person[n]) for n in names], np.int64)
    paths = [p for n in names for p in sorted(paths_by_person[n])]
    return FaceSet([label_prefix + n for n in names], paths, _offsets(counts), counts)


def split_people(
    counts: dict[str, int], validation_fraction: float, seed: int, where: str
) -> tuple[list[str], list[str], list[str]]:
    """(validation, training with ≥ 2, training with 1): a seeded share of the people
    with two pictures or more is held out (at least 2, and at least 2 left to train)."""
    multi = sorted(n for n, c in counts.items() if c >= 2)
    if len(multi) < 4:
        raise FacelibError(
            f"{where}: {len(multi)} people have two usable pictures or more; training needs at "
            "least 4 (2 are held out for validation, 2 trained on)"
        )
    order = list(np.random.default_rng(seed).permutation(multi))
    n_val = min(max(2, round(validation_fraction * len(order))), len(order) - 2)
    singles = sorted(n for n, c in counts.items() if c == 1)
    return sorted(order[:n_val]), sorted(order[n_val:]), singles


def crop_folder(root: Path, settings: CropSettings) -> Path:
    """Where `preprocess --images` puts the folder's crops; a crop folder made from
    another folder of the same name is refused rather than mixed."""
    out = output_dir(f"images-{root.resolve().name}", settings)
    origin, real = out / "origin.json", str(root.resolve())
    if origin.is_file():
        made_from = json.loads(origin.read_text()).get("folder")
        if made_from != real:
            raise FacelibError(
                f"{out} holds crops of {made_from}, another folder named {root.resolve().name}: "
                "rename one of the folders, or delete that crop folder"
            )
    else:  # new, or made by `preprocess --images` before folders were recorded
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(origin, {"folder": real})
    return out


def folder_source(
    listing: Listing,
    settings: CropSettings,
    seed: int,
    validation_fraction: float,
    manifest_sha256: str,
    single_picture_people: bool,
    progress: bool = True,
    workers: int | None = None,
) -> Source:
    """Crop the listed pictures (made once, cached) and split the folder's people."""
    root = listing.root
    out = crop_folder(root, settings)
    wanted = {path for path, _, _ in listing.rows}
    preprocess_dataset(
        root,
        settings,
        variant=root.resolve().name,
        only=wanted,
        out_root=out,
        progress=progress,
        workers=workers,
    )
    top = root.resolve().name
    by_person: dict[str, list[str]] = {}
    skips = Skips(Counter(listing.skips.counts), {k: list(v) for k, v in listing.skips.examples.items()})
    for record in read_manifest(out):
        relative = record["source"].split("/", 1)[1] if "/" in record["source"] else ""
        if relative not in wanted:
            continue  # pictures cropped earlier but no longer listed (or left out above)
        if record["status"] in USABLE:
            by_person.setdefault(record["identity"], []).append(str(out / record["crop"]))
        else:
            skips.add(NO_FACE if record["status"] in ("fallback", "skipped") else UNREADABLE, relative)
    listed = {person for _, person, _ in listing.rows}
    warnings = list(listing.warnings) + [
        f"{person}: no face found in any picture; left out" for person in sorted(listed - set(by_person))
    ]
    counts = {n: len(p) for n, p in by_person.items()}
    validation, train, singles = split_people(counts, validation_fraction, seed, str(root))
    train_people = train + (singles if single_picture_people else [])
    prefix = f"{top}/"
    source = Source(
        name=top,
        train=faceset({n: by_person[n] for n in train_people}, prefix),
        validation=faceset({n: by_person[n] for n in validation}, prefix),
        record={
            "kind": "folder",
            "root": str(root.resolve()),
            "crops": out.name,
            "manifest_sha256": manifest_sha256,
            "pictures": len(listing.rows),
            "people": listing.people,
            "trained_people": len(train_people),
            "trained_pictures": sum(counts[n] for n in train_people),
            "validation_people": validation,
            "people_with_one_picture": len(singles),
            "skipped": skips.to_dict(),
            "warnings": warnings,
        },
        skips=skips,
        singles_left_out=0 if single_picture_people else len(singles),
    )
    source.record["training_people"] = train_people
    return source


def merge(sets: list[FaceSet]) -> FaceSet:
    """One FaceSet of several (their identities must differ): linear in the pictures."""
    from facelib.data.pipeline import FaceSet

    identities = [n for s in sets for n in s.identities]
    if len(set(identities)) != len(identities):
        raise FacelibError("two sources name the same person; they are told apart by their folder's name")
    counts = np.concatenate([s.counts for s in sets]) if sets else np.zeros(0, np.int64)
    return FaceSet(identities, [p for s in sets for p in s.paths], _offsets(counts), counts)


def bare_name(identity: str) -> str:
    """A person's own name, without the source prefix of a folder's people."""
    return identity.rsplit("/", 1)[-1]


def index_from_manifest(
    rows: list[tuple[str, str, str]], root: str, validation_fraction: float = 0.1, seed: int = 0
) -> tuple[FaceSet, FaceSet]:
    """The training and validation FaceSets of a manifest's rows as training builds
    them, without cropping (bench/manifest_scaling.py times it on made-up rows)."""
    by_person: dict[str, list[str]] = {}
    for path, person, _ in rows:
        by_person.setdefault(person, []).append(f"{root}/{path}")
    counts = {n: len(p) for n, p in by_person.items()}
    validation, train, singles = split_people(counts, validation_fraction, seed, root)
    train_set = faceset({n: by_person[n] for n in train + singles})
    return train_set, faceset({n: by_person[n] for n in validation})


# ------------------------------------------------------------ an LFW stand-in


def lfw_standin_people(min_pictures: int = 1) -> dict[str, int]:
    """LFW people fit to stand in for "your own folder": outside View 1's training
    split (so a model trained on LFW never saw them) and in none of View 1's test
    pairs (so `facelib evaluate` can still score every one of those pairs)."""
    from facelib.data import datasets

    in_pairs = {ref.person for pair in datasets.view1_pairs("test") for ref in (pair.left, pair.right)}
    test_people = datasets.view1_people("test")
    return {n: c for n, c in sorted(test_people.items()) if n not in in_pairs and c >= min_pictures}


def make_lfw_standin(
    out: str | Path, folders: int = 1, max_people: int | None = None, min_pictures: int = 1
) -> list[Path]:
    """Copy the stand-in people's pictures into `out` (or `out`/part-1 … part-N, people
    dealt in turn, with `folders` > 1), laid out as a folder of people; returns the folders."""
    import shutil

    from facelib.data import datasets

    images_root = datasets.fetch_lfw()
    people = list(lfw_standin_people(min_pictures))[:max_people]
    out = Path(out)
    targets = [out] if folders == 1 else [out / f"part-{i + 1}" for i in range(folders)]
    for i, person in enumerate(people):
        target = targets[i % folders] / person
        target.mkdir(parents=True, exist_ok=True)
        for picture in sorted((images_root / person).glob("*.jpg")):
            if not (target / picture.name).is_file():
                shutil.copyfile(picture, target / picture.name)
    return targets


if __name__ == "__main__":  # python -m facelib.data.sources OUT [FOLDERS]
    import sys

    made = make_lfw_standin(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    for folder in made:
        print(
            f"{folder}: {sum(1 for _ in folder.glob('*/*.jpg')):,} pictures of {sum(1 for _ in folder.iterdir()):,} people"
        )
