"""LFW: download (or mirror), safe extraction, protocol files and the census.

    from facelib.data import datasets
    images = datasets.fetch_lfw()              # data/raw/lfw/lfw-deepfunneled/
    pairs = datasets.view1_pairs("test")       # 1,000 typed pairs
    datasets.census(images).summary()

Downloads go through pooch with pinned hashes. With FACELIB_MIRROR set, files are
read from `$FACELIB_MIRROR/lfw/` instead and nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from facelib.core import config
from facelib.core.errors import ChecksumError, CorruptArchiveError, DataUnavailableError, UnsafeArchiveError
from facelib.core.files import atomic_path, write_json_atomic


@dataclass(frozen=True)
class Remote:
    """One file of the dataset: where it comes from and how to check it."""

    filename: str
    url: str
    known_hash: str | None  # "sha256:…" or "md5:…" of the official file
    # Archives only: sha256 over the sorted "<sha256>  <path>" lines of every image.
    # It checks the images by content, so a re-packed archive (the mirror's) passes too.
    content_sha256: str | None = None
    top_folder: str | None = None


_LFW_SITE = "http://vis-www.cs.umass.edu/lfw/"
_FIGSHARE = "https://ndownloader.figshare.com/files/"

PROTOCOL_FILES: dict[str, Remote] = {
    r.filename: r
    for r in [
        Remote(
            "pairs.txt",
            _FIGSHARE + "5976006",
            "sha256:ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592",
        ),
        Remote(
            "pairsDevTrain.txt",
            _FIGSHARE + "5976012",
            "sha256:1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa",
        ),
        Remote(
            "pairsDevTest.txt",
            _FIGSHARE + "5976009",
            "sha256:7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c",
        ),
        Remote(
            "people.txt",
            _LFW_SITE + "people.txt",
            "sha256:bc8fa2b7f25c895cf7efb6de4f4fc27ca8b8d1cfa63350ad8b96eae2b198d365",
        ),
        Remote(
            "peopleDevTrain.txt",
            _LFW_SITE + "peopleDevTrain.txt",
            "sha256:2e58df13ba4cc143189336e001cc2c195f1dfa5b29a6475c02857be353c2a2fa",
        ),
        Remote(
            "peopleDevTest.txt",
            _LFW_SITE + "peopleDevTest.txt",
            "sha256:c3ed1f90499473401542101a56c14c1d82396bb8218c67a356d7460601047555",
        ),
    ]
}

VARIANTS: dict[str, Remote] = {
    "lfw": Remote(
        "lfw.tgz",
        _FIGSHARE + "5976018",
        "sha256:055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0",
        top_folder="lfw",
    ),
    "lfw-funneled": Remote(
        "lfw-funneled.tgz",
        _FIGSHARE + "5976015",
        "md5:1b42dfed7d15c9b2dd63d5e5840c86ad",
        top_folder="lfw_funneled",
    ),
    "lfw-deepfunneled": Remote(
        "lfw-deepfunneled.tgz",
        _LFW_SITE + "lfw-deepfunneled.tgz",
        "md5:68331da3eb755a505a502b5aacb3c201",
        content_sha256="ad21b4af511fa69417604b392fa944b9311f3155f6c073a2c8ec21365a995208",
        top_folder="lfw-deepfunneled",
    ),
}


# --------------------------------------------------------------------------- files


def lfw_dir() -> Path:
    return config.raw_dir() / "lfw"


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_hash(path: Path, known_hash: str) -> None:
    algorithm, expected = known_hash.split(":", 1)
    actual = file_hash(path, algorithm)
    if actual != expected:
        raise ChecksumError(
            f"{path} has {algorithm} {actual}, expected {expected}: the file is corrupt or "
            "not the official one; delete it and fetch again"
        )


def _mirror_file(filename: str) -> Path:
    mirror = config.mirror()
    assert mirror is not None
    path = mirror / "lfw" / filename
    if not path.is_file():
        raise DataUnavailableError(f"FACELIB_MIRROR is set to {mirror} but {path} does not exist")
    return path


def _download(remote: Remote, folder: Path, check_hash: bool = True) -> Path:
    """Download with pooch: it writes to a temporary name and moves the file into
    place only once the hash matches, so an interrupted download never passes as done."""
    import pooch

    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(
            pooch.retrieve(
                remote.url,
                known_hash=remote.known_hash if check_hash else None,
                fname=remote.filename,
                path=folder,
                progressbar=True,
            )
        )
    except ValueError as exc:  # pooch's hash mismatch
        raise ChecksumError(f"{remote.filename} from {remote.url}: {exc}") from exc
    except Exception as exc:  # network errors come in many types (requests, socket, ...)
        raise DataUnavailableError(
            f"could not download {remote.filename} from {remote.url} ({type(exc).__name__}). "
            f"Without internet, set FACELIB_MIRROR to a folder holding lfw/{remote.filename}, "
            f"or put the file in {folder} yourself"
        ) from exc


def _atomic_copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def fetch_protocol_file(filename: str) -> Path:
    """Path of a verified protocol file under data/raw/lfw/, fetching it if needed."""
    if filename not in PROTOCOL_FILES:
        raise DataUnavailableError(f"unknown LFW file {filename!r}; known: {', '.join(PROTOCOL_FILES)}")
    remote = PROTOCOL_FILES[filename]
    target = lfw_dir() / filename
    if target.is_file():
        try:
            _check_hash(target, remote.known_hash)
            return target
        except ChecksumError:
            target.unlink()  # a bad copy must not block a fresh fetch
    if config.mirror() is not None:
        source = _mirror_file(filename)
        _check_hash(source, remote.known_hash)
        _atomic_copy(source, target)
        return target
    return _download(remote, lfw_dir())


def fetch_protocol_files() -> dict[str, Path]:
    return {name: fetch_protocol_file(name) for name in PROTOCOL_FILES}


# ------------------------------------------------------------------------ archives


def default_variant() -> str:
    """The deep-funneled images: the mirror here has them, and they are aligned."""
    return "lfw-deepfunneled"


def _refuse_unsafe(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's `data` filter (no absolute paths, no `..`, no special files),
    plus no links at all: LFW holds only folders and JPEGs."""
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(f"archive member {member.name!r} is a link; refusing to extract")
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError as exc:
        raise UnsafeArchiveError(f"unsafe archive member {member.name!r}: {exc}") from exc


def safe_extract(archive: Path, target_parent: Path, top_folder: str) -> Path:
    """Extract `archive` (which holds `top_folder/…`) into `target_parent/top_folder`.

    Extraction happens in a temporary folder beside the target and is moved into
    place in one rename, so an interrupted run leaves nothing that looks complete.
    """
    target_parent.mkdir(parents=True, exist_ok=True)
    for stale in target_parent.glob(f".extract-{top_folder}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{top_folder}-", dir=target_parent))
    try:
        with tarfile.open(archive) as tar:
            for member in tqdm(tar, desc=f"extract {archive.name}", unit=" files"):
                parts = Path(member.name).parts
                if parts[:1] != (top_folder,) or ".." in parts:
                    raise UnsafeArchiveError(f"archive member {member.name!r} is outside {top_folder}/")
                tar.extract(member, tmp, filter=_refuse_unsafe)
        final = target_parent / top_folder
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp / top_folder, final)
        return final
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error) as exc:
        raise CorruptArchiveError(
            f"{archive} is incomplete or corrupt ({exc}); delete it and fetch again"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def content_digest(images_root: Path) -> str:
    """sha256 over sorted "<sha256>  <top_folder/…/file>" lines of every file."""
    base = images_root.parent
    files = sorted(p for p in images_root.rglob("*") if p.is_file())
    lines = (f"{file_hash(p)}  {p.relative_to(base).as_posix()}\n" for p in files)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
    return digest.hexdigest()


def _marker(variant: str) -> Path:
    return lfw_dir() / f".{variant}.complete"


def fetch_lfw(variant: str | None = None) -> Path:
    """Folder of `<Person>/<Person>_NNNN.jpg` images, fetched and extracted if needed.

    Idempotent: once complete (a marker written last), later calls return at once.
    """
    variant = variant or default_variant()
    if variant not in VARIANTS:
        raise DataUnavailableError(f"unknown LFW variant {variant!r}; choose one of {list(VARIANTS)}")
    remote = VARIANTS[variant]
    images_root = lfw_dir() / remote.top_folder
    if _marker(variant).is_file() and images_root.is_dir():
        return images_root

    if config.mirror() is not None:
        archive = _mirror_file(remote.filename)
        # The mirror re-packs archives; it is checked by image content when a
        # content hash is pinned, otherwise by the official archive hash.
        if remote.content_sha256 is None:
            _check_hash(archive, remote.known_hash)
    else:
        archive = _download(remote, lfw_dir() / "downloads")

    images_root = safe_extract(archive, lfw_dir(), remote.top_folder)
    if remote.content_sha256 is not None:
        actual = content_digest(images_root)
        if actual != remote.content_sha256:
            shutil.rmtree(images_root)
            raise ChecksumError(
                f"the images of {archive} do not match the official {variant} set "
                f"(content sha256 {actual}, expected {remote.content_sha256})"
            )
    write_json_atomic(_marker(variant), {"archive": str(archive)})
    return images_root


# ------------------------------------------------------------------ protocol files


@dataclass(frozen=True)
class ImageRef:
    """One LFW image, by person and 1-based image number."""

    person: str
    number: int

    @property
    def relpath(self) -> str:
        return f"{self.person}/{self.person}_{self.number:04d}.jpg"

    def path(self, images_root: Path) -> Path:
        return images_root / self.relpath


@dataclass(frozen=True)
class Pair:
    """A verification pair from pairs*.txt; `fold` is 0 for View 1 files."""

    left: ImageRef
    right: ImageRef
    fold: int

    @property
    def same(self) -> bool:
        return self.left.person == self.right.person


def _parse_pair(fields: list[str], fold: int) -> Pair:
    if len(fields) == 3:
        name, a, b = fields
        return Pair(ImageRef(name, int(a)), ImageRef(name, int(b)), fold)
    if len(fields) == 4:
        name_a, a, name_b, b = fields
        return Pair(ImageRef(name_a, int(a)), ImageRef(name_b, int(b)), fold)
    raise ValueError(f"a pair line has 3 or 4 fields, got {fields}")


def read_pairs(path: Path) -> list[Pair]:
    """Parse pairs.txt (header `folds n`) or pairsDev*.txt (header `n`): each fold
    lists n same-person pairs, then n different-person pairs."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    header = [int(x) for x in lines[0]]
    folds, per_class = (1, header[0]) if len(header) == 1 else (header[0], header[1])
    body = lines[1:]
    if len(body) != folds * 2 * per_class:
        raise ValueError(f"{path}: expected {folds * 2 * per_class} pairs, found {len(body)}")
    return [_parse_pair(fields, i // (2 * per_class)) for i, fields in enumerate(body)]


def read_people(path: Path) -> list[dict[str, int]]:
    """Parse people.txt (header `folds`, then per fold a count and `name n` lines)
    or peopleDev*.txt (header `count`): one {name: image count} per fold."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(lines[1]) == 2:  # View 1: a single count, then the people
        return [{name: int(n) for name, n in lines[1:]}]
    folds, rest = int(lines[0][0]), lines[1:]
    result = []
    for _ in range(folds):
        count, rest = int(rest[0][0]), rest[1:]
        result.append({name: int(n) for name, n in rest[:count]})
        rest = rest[count:]
    return result


def view1_pairs(split: str) -> list[Pair]:
    """View 1 development pairs: split is "train" (2,200) or "test" (1,000)."""
    return read_pairs(fetch_protocol_file(f"pairsDev{split.capitalize()}.txt"))


def view1_people(split: str) -> dict[str, int]:
    """View 1 identity-disjoint people: "train" (4,038) or "test" (1,711)."""
    return read_people(fetch_protocol_file(f"peopleDev{split.capitalize()}.txt"))[0]


def view2_pairs() -> list[Pair]:
    """View 2: 10 folds of 300 same + 300 different pairs."""
    return read_pairs(fetch_protocol_file("pairs.txt"))


def view2_people() -> list[dict[str, int]]:
    return read_people(fetch_protocol_file("people.txt"))


# -------------------------------------------------------------------------- census


@dataclass(frozen=True)
class Census:
    """Images per identity of an extracted LFW folder."""

    images_per_person: dict[str, int]

    @property
    def people(self) -> int:
        return len(self.images_per_person)

    @property
    def images(self) -> int:
        return sum(self.images_per_person.values())

    @property
    def people_with_pairs(self) -> int:
        """Identities with ≥ 2 images: the ones that can give a positive pair."""
        return sum(1 for n in self.images_per_person.values() if n >= 2)

    @property
    def images_of_people_with_pairs(self) -> int:
        return sum(n for n in self.images_per_person.values() if n >= 2)

    def summary(self) -> str:
        return (
            f"{self.people:,} people, {self.images:,} images; "
            f"{self.people_with_pairs:,} people with ≥ 2 images hold "
            f"{self.images_of_people_with_pairs:,} images"
        )


def list_images(images_root: Path) -> list[Path]:
    """Every JPEG under `images_root/<Person>/`, sorted."""
    return sorted(images_root.glob("*/*.jpg"))


def census(images_root: Path | Iterable[Path]) -> Census:
    paths = list_images(images_root) if isinstance(images_root, Path) else images_root
    counts = Counter(p.parent.name for p in paths)
    return Census(dict(sorted(counts.items())))
