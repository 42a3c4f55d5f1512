"""Your own pictures, laid out as LFW's: one folder per person, their pictures inside.

    people = list_people("photos/")                 # photos/<Person>/*.jpg, clear errors
    embedded = embed_pictures(verifier, people.pictures)   # no-face pictures skipped, counted
    pairs = folder_pairs(embedded.labels)           # all same-person pairs + as many different
    gallery, mated, strangers = identification_split(embedded)

What the `enroll`, `identify --known`, `calibrate`, `evaluate --images` and
`preprocess --images` commands share. Nothing here prints: warnings are returned for
the caller to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facelib.core.decision import embedding_distance
from facelib.core.errors import FacelibError, ImageError, NoFaceError
from facelib.data.datasets import read_pairs
from facelib.data.preprocess import output_dir, preprocess_dataset

# Pictures of a person folder (case-insensitive). `preprocess --images` crops the .jpg
# ones only (lower case), as it does for LFW, and warns about the others.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SEED = 0  # of every sample drawn here: the same folder gives the same pairs and split
# best_threshold tries every midpoint against every pair (quadratic): above this many
# same-person pairs, a seeded sample of them is scored (and the caller says so).
MAX_SAME_PAIRS = 5_000


def _is_picture(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


# ------------------------------------------------------------------------- listing


def _holds_people(folder: Path) -> bool:
    """Whether a subfolder of `folder` holds a picture (`folder/<Person>/<picture>`)."""
    return any(
        sub.is_dir() and not sub.name.startswith(".") and any(_is_picture(p) for p in sub.iterdir())
        for sub in folder.iterdir()
    )


def expand_pictures(arguments: list[str], people_folder_advice: str = "") -> list[str]:
    """Pictures named on a command line, a folder standing for the pictures directly in
    it (sorted), as `face_recognition known/ unknown/` takes a folder of unknown faces.
    A folder of people (subfolders with pictures, none directly inside) is refused, with
    `people_folder_advice` (its `{folder}` filled in) saying what to do instead."""
    out = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            pictures = sorted(p for p in path.iterdir() if _is_picture(p))
            if not pictures and _holds_people(path):
                advice = people_folder_advice.format(folder=path) or "give pictures, or one person's folder"
                raise FacelibError(f"{path} looks like a folder of people (person/*.jpg): {advice}")
            if not pictures:
                raise FacelibError(f"{path} holds no pictures ({', '.join(IMAGE_SUFFIXES)})")
            out.extend(str(p) for p in pictures)
        else:
            out.append(argument)
    return out


@dataclass
class PeopleFolder:
    """The people of a folder and their pictures, both sorted by name."""

    root: Path
    people: dict[str, list[Path]]
    warnings: list[str] = field(default_factory=list)  # person folders left out, and why

    @property
    def pictures(self) -> list[tuple[str, Path]]:
        """(person, picture) for every picture."""
        return [(person, path) for person, paths in self.people.items() for path in paths]

    def summary(self) -> str:
        pictures = sum(len(p) for p in self.people.values())
        return f"{len(self.people):,} people, {pictures:,} pictures"


def list_people(folder: str | Path) -> PeopleFolder:
    """The people of `folder` (`folder/<Person>/<picture>`). A person folder without
    pictures is left out with a warning; a folder that holds no person is an error."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise FacelibError(f"{root} does not exist")
    if not root.is_dir():
        raise FacelibError(f"{root} is not a folder: give a folder with one subfolder per person")
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise FacelibError(f"{root} is empty: put each person's pictures in a subfolder named after them")
    subfolders = sorted(p for p in entries if p.is_dir())
    if not subfolders:
        loose = sum(1 for p in entries if _is_picture(p))
        raise FacelibError(
            f"{root} has no person folders"
            + (f" ({loose} pictures lie directly in it)" if loose else "")
            + ": put each person's pictures in a subfolder named after them (Ada/1.jpg, Ada/2.jpg, Grace/1.jpg)"
        )
    people, warnings = {}, []
    for sub in subfolders:
        pictures = sorted(p for p in sub.iterdir() if _is_picture(p))
        if pictures:
            people[sub.name] = pictures
        else:
            warnings.append(f"{sub.name}: no picture in {sub} ({', '.join(IMAGE_SUFFIXES)}); left out")
    if not people:
        raise FacelibError(
            f"no pictures in the person folders of {root} (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    return PeopleFolder(root, people, warnings)


# ----------------------------------------------------------------------- embedding


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str  # "no face" or "unreadable"
    message: str


@dataclass
class EmbeddedPictures:
    """The embeddings of the pictures whose face was found, and those skipped."""

    labels: list[str]
    paths: list[Path]
    embeddings: np.ndarray  # (N, D), row i is paths[i] of person labels[i]
    faces: list = field(default_factory=list)  # verification.FaceFound of each row
    crops: list[np.ndarray] = field(default_factory=list)  # with keep_crops only
    skipped: list[Skipped] = field(default_factory=list)

    def templates(self) -> dict[str, np.ndarray]:
        """Each person's embeddings, one row per picture."""
        rows: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            rows.setdefault(label, []).append(i)
        return {name: self.embeddings[index] for name, index in rows.items()}

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.templates().items()}

    def skipped_summary(self, examples: int = 3) -> str:
        """e.g. "2 pictures skipped: no face found in a.jpg, b.jpg"; "" when none."""
        if not self.skipped:
            return ""
        parts = []
        for reason, what in (("no face", "no face found in"), ("unreadable", "could not read")):
            paths = [s.path.name for s in self.skipped if s.reason == reason]
            if paths:
                more = f" and {len(paths) - examples} more" if len(paths) > examples else ""
                parts.append(f"{what} {', '.join(paths[:examples])}{more}")
        n = len(self.skipped)
        return f"{n} picture{'s' if n > 1 else ''} skipped: {'; '.join(parts)}"


def embed_pictures(
    verifier,
    pictures: list[tuple[str, Path]],
    batch_size: int = 32,
    keep_crops: bool = False,
    progress: bool = True,
) -> EmbeddedPictures:
    """Crop and embed each (person, picture) with the verifier's crop policy, a batch at
    a time (only the embeddings are kept, and the crops with `keep_crops`). A picture
    with no face, or that cannot be read, is skipped and recorded, never raised. A
    progress bar (stderr) from 100 pictures on."""
    labels, paths, faces, kept_crops, skipped, rows, batch = [], [], [], [], [], [], []

    def flush() -> None:
        if batch:
            rows.append(verifier.embed_crops(batch))
            batch.clear()

    bar = tqdm(pictures, desc="embed", unit=" pictures", disable=not progress or len(pictures) < 100)
    for person, path in bar:
        try:
            crop, face = verifier.face_crop(path, str(path))
        except NoFaceError as exc:
            skipped.append(Skipped(Path(path), "no face", str(exc)))
            continue
        except (ImageError, OSError) as exc:
            skipped.append(Skipped(Path(path), "unreadable", str(exc)))
            continue
        labels.append(person)
        paths.append(Path(path))
        faces.append(face)
        batch.append(crop)
        if keep_crops:
            kept_crops.append(crop)
        if len(batch) == batch_size:
            flush()
    flush()
    embeddings = np.concatenate(rows) if rows else np.zeros((0, verifier.card.embedding_dim))
    return EmbeddedPictures(labels, paths, embeddings, faces, kept_crops, skipped)


def embed_folder(verifier, people: PeopleFolder, **options) -> tuple[EmbeddedPictures, list[str]]:
    """Every picture of the folder embedded; warnings for the people left with none."""
    embedded = embed_pictures(verifier, people.pictures, **options)
    kept = set(embedded.labels)
    warnings = [
        f"{person}: no usable picture ({len(paths)} skipped: no face found or unreadable); left out"
        for person, paths in people.people.items()
        if person not in kept
    ]
    if not embedded.labels:
        raise FacelibError(
            f"no usable picture in {people.root}: {embedded.skipped_summary()} "
            "(a face must be visible: frontal, well lit)"
        )
    return embedded, warnings


# -------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class PairIndex:
    """Pairs of rows of an embedding matrix."""

    left: np.ndarray
    right: np.ndarray
    same: np.ndarray  # bool
    sampled_same: bool = False  # same-person pairs were a sample (over MAX_SAME_PAIRS)

    def __len__(self) -> int:
        return len(self.same)

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        return np.asarray(embedding_distance(embeddings[self.left], embeddings[self.right]))

    def summary(self) -> str:
        same = int(self.same.sum())
        sampled = f" (a sample of {MAX_SAME_PAIRS:,})" if self.sampled_same else ""
        return f"{same:,} same-person{sampled} and {len(self) - same:,} different-person pairs"


def folder_pairs(labels, seed: int = SEED, max_same: int = MAX_SAME_PAIRS) -> PairIndex:
    """Every same-person pair (each once; a seeded sample above `max_same`), and a
    seeded sample of as many different-person pairs (all of them when there are fewer)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = len(labels)
    same_left, same_right = [], []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        i, j = np.triu_indices(len(rows), k=1)
        same_left.append(rows[i])
        same_right.append(rows[j])
    same_left = np.concatenate(same_left) if same_left else np.zeros(0, int)
    same_right = np.concatenate(same_right) if same_right else np.zeros(0, int)
    sampled = len(same_left) > max_same
    if sampled:
        keep = np.sort(rng.choice(len(same_left), max_same, replace=False))
        same_left, same_right = same_left[keep], same_right[keep]
    wanted = len(same_left)
    _, counts = np.unique(labels, return_counts=True)
    total_different = (n * n - int((counts**2).sum())) // 2
    if total_different <= 2 * wanted:  # few: list them all, then draw
        i, j = np.triu_indices(n, k=1)
        different = labels[i] != labels[j]
        i, j = i[different], j[different]
        if len(i) > wanted:
            keep = np.sort(rng.choice(len(i), wanted, replace=False))
            i, j = i[keep], j[keep]
        diff_left, diff_right = i, j
    else:  # many: draw pairs until enough distinct ones are found
        chosen: set[tuple[int, int]] = set()
        while len(chosen) < wanted:
            a, b = rng.integers(0, n, size=(2, 2 * (wanted - len(chosen))))
            for x, y in zip(a.tolist(), b.tolist(), strict=True):
                if labels[x] != labels[y]:
                    chosen.add((min(x, y), max(x, y)))
                    if len(chosen) == wanted:
                        break
        ordered = sorted(chosen)
        diff_left = np.array([p[0] for p in ordered], int)
        diff_right = np.array([p[1] for p in ordered], int)
    return PairIndex(
        np.concatenate([same_left, diff_left]).astype(int),
        np.concatenate([same_right, diff_right]).astype(int),
        np.concatenate([np.ones(len(same_left), bool), np.zeros(len(diff_left), bool)]),
        sampled,
    )


def read_pairs_file(path: str | Path, root: Path) -> list:
    """The pairs of a file in LFW's pairs.txt format, its names resolved as LFW's are
    (`root/<Person>/<Person>_NNNN.jpg`); every picture must exist."""
    path = Path(path)
    if not path.is_file():
        raise FacelibError(f"pairs file {path} does not exist")
    try:
        pairs = read_pairs(path)
    except (ValueError, IndexError) as exc:
        raise FacelibError(
            f"{path} is not in LFW's pairs.txt format ({exc}): a header `n` or `folds n`, then "
            "`name i j` (same person) and `name1 i name2 j` (different) lines"
        ) from exc
    if not pairs:
        raise FacelibError(f"{path} lists no pairs")
    missing = sorted(
        {ref.relpath for p in pairs for ref in (p.left, p.right) if not ref.path(root).is_file()}
    )
    if missing:
        raise FacelibError(
            f"{len(missing)} pictures of {path.name} are not in {root} (e.g. {root / missing[0]}); "
            "names resolve as LFW's: FOLDER/<Person>/<Person>_NNNN.jpg"
        )
    return pairs


def pairs_in(pairs: list, root: Path, embedded: EmbeddedPictures) -> tuple[PairIndex, int]:
    """The pairs whose two pictures were embedded, as rows of `embedded`, and how
    many were dropped because a picture was skipped."""
    row = {p.resolve(): i for i, p in enumerate(embedded.paths)}
    left, right, same = [], [], []
    for pair in pairs:
        a, b = row.get(pair.left.path(root).resolve()), row.get(pair.right.path(root).resolve())
        if a is None or b is None:
            continue
        left.append(a)
        right.append(b)
        same.append(pair.same)
    index = PairIndex(np.array(left, int), np.array(right, int), np.array(same, bool))
    return index, len(pairs) - len(index)


def pair_pictures(pairs: list, root: Path) -> list[tuple[str, Path]]:
    """(person, picture) of every picture the pairs name, each once, sorted."""
    refs = sorted({ref for p in pairs for ref in (p.left, p.right)}, key=lambda r: r.relpath)
    return [(ref.person, ref.path(root)) for ref in refs]


# ------------------------------------------------------------------ identification


@dataclass
class IdentificationSplit:
    """A folder as an identification test: per person with two pictures or more, one
    (seeded) picture enrolled and the others mated probes; people with one picture
    are strangers (non-mated probes)."""

    gallery: dict[str, np.ndarray]
    mated: list[tuple[np.ndarray, str]]
    strangers: list[np.ndarray]


def identification_split(embedded: EmbeddedPictures, seed: int = SEED) -> IdentificationSplit:
    rng = np.random.default_rng(seed)
    gallery, mated, strangers = {}, [], []
    for person, rows in embedded.templates().items():
        if len(rows) == 1:
            strangers.append(rows[0])
            continue
        order = rng.permutation(len(rows))
        gallery[person] = rows[order[:1]]
        mated.extend((rows[i], person) for i in order[1:])
    return IdentificationSplit(gallery, mated, strangers)


# ------------------------------------------------------------------ preprocessing


def preprocess_folder(
    people: PeopleFolder, settings, out_root: Path | None = None, workers: int | None = None, **options
):
    """Crop the .jpg pictures of a people folder with the policy LFW's crops were made
    with (`preprocess.preprocess_dataset`, which crops `*.jpg` only): crops and
    manifest.csv in `out_root`, or in data/processed/images-<folder name>-<detector>-<size>/
    (the prefix keeps a folder named like an LFW variant, `lfw`, out of LFW's crops).
    Returns its Summary, the folder, and warnings (the pictures left out)."""
    root, variant = people.root, people.root.resolve().name
    only, left_out = set(), []
    for _, path in people.pictures:
        relative = path.relative_to(root).as_posix()
        if path.suffix == ".jpg":
            only.add(relative)
        else:
            left_out.append(relative)
    if not only:
        raise FacelibError(
            f"no .jpg pictures in the person folders of {root} (preprocess crops *.jpg, as LFW); "
            "save them as .jpg to crop them"
        )
    warnings = []
    if left_out:
        examples = ", ".join(left_out[:3]) + (f" and {len(left_out) - 3} more" if len(left_out) > 3 else "")
        warnings.append(
            f"{len(left_out)} picture{'s' if len(left_out) != 1 else ''} left out, not .jpg ({examples}): "
            "preprocess crops *.jpg only, as for LFW; save them as .jpg to crop them"
        )
    out_root = Path(out_root) if out_root else output_dir(f"images-{variant}", settings)
    summary = preprocess_dataset(
        root, settings, variant=variant, workers=workers, only=only, out_root=out_root, **options
    )
    return summary, out_root, warnings
