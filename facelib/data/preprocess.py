"""Detect, crop and resize every LFW image into data/processed/, with a manifest.

    from facelib.data.preprocess import preprocess_dataset
    summary = preprocess_dataset(images_root, detector="haar", size=160)

Output: `data/processed/<variant>-<detector>-<size>/<Person>/<file>.jpg` and
`manifest.csv` (identity, source, crop, status, faces, box, score). Each picture is
cropped by `crop.crop_picture`, the policy verification uses too. Runs on every
core, writes each crop atomically, and is resumable: records are journalled as they
finish, so a re-run (after a crash or Ctrl-C) skips the work already done.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from facelib.core import config
from facelib.core.errors import ConfigError, FacelibError
from facelib.core.files import atomic_path, write_atomic, write_json_atomic
from facelib.data.crop import CropSettings, crop_picture
from facelib.data.datasets import fetch_lfw, list_images
from facelib.data.images import load_image

# detected: one face; multiple: several, the central/largest kept; fallback: none,
# centre crop; skipped: none, no crop written; failed: the image could not be read.
STATUSES = ("detected", "multiple", "fallback", "skipped", "failed")
FIELDS = ["identity", "source", "crop", "status", "faces", "x", "y", "w", "h", "score", "aligned", "message"]


def output_dir(variant: str, settings: CropSettings) -> Path:
    return config.processed_dir() / config.crops_folder(
        variant, settings.detector, settings.size, settings.five_point, settings.equalize
    )


# ----------------------------------------------------------------- one image (worker)

_detector = None


def _init_worker(settings: CropSettings) -> None:
    global _detector
    cv2.setNumThreads(1)  # one image per core; OpenCV's own threads would only contend
    _detector = settings.make_detector()


def write_jpeg_atomic(path: Path, rgb: np.ndarray, quality: int = 95) -> None:
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise FacelibError(f"could not encode {path}")
    write_atomic(path, encoded.tobytes(), durable=False)  # checked on resume (_crop_is_complete)


def process_image(source: Path, relsource: str, out_root: Path, settings: CropSettings) -> dict:
    """Detect and crop one image; returns its manifest record (never raises for bad data)."""
    identity = source.parent.name
    crop_rel = f"{identity}/{source.stem}.jpg"
    record = dict.fromkeys(FIELDS, "")
    record.update(identity=identity, source=relsource, faces=0, aligned=False)
    try:
        rgb = load_image(source)
    except FacelibError as exc:
        record.update(status="failed", message=str(exc))
        return record
    crop, info = crop_picture(rgb, _detector, settings)
    record["faces"] = info.faces_found
    if info.face is None:
        if settings.no_face == "skip":
            record.update(status="skipped", message="no face found")
            return record
        record.update(status="fallback", message="no face found: centre crop")
    else:
        x, y, w, h = info.face.box
        record.update(
            status="multiple" if info.faces_found > 1 else "detected",
            x=x,
            y=y,
            w=w,
            h=h,
            score=round(info.face.score, 3),
            aligned=(
                settings.five_point and info.face.landmarks is not None and len(info.face.landmarks) >= 5
            )
            or (settings.align and info.face.eyes is not None),
            message="found on a padded copy (a tight crop)" if info.padded else "",
        )
    write_jpeg_atomic(out_root / crop_rel, crop)
    record["crop"] = crop_rel
    return record


def _work(job: tuple[Path, str, Path, CropSettings]) -> dict:
    return process_image(*job)


# ------------------------------------------------------------------ the whole dataset


@dataclass
class Summary:
    out_dir: str
    total: int
    processed_now: int
    reused: int
    seconds: float
    counts: dict[str, int]

    def __str__(self) -> str:
        counts = ", ".join(f"{k} {self.counts.get(k, 0):,}" for k in STATUSES)
        return (
            f"{self.total:,} images → {self.out_dir}\n"
            f"  {counts}\n"
            f"  processed now {self.processed_now:,}, already done {self.reused:,}, {self.seconds:.1f} s"
        )


def _read_records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _crop_is_complete(path: Path) -> bool:
    # Cheap check that a JPEG was written to the end (crops are written atomically,
    # but a file may also have been damaged since).
    try:
        with open(path, "rb") as f:
            f.seek(-2, os.SEEK_END)
            return f.read(2) == b"\xff\xd9"
    except OSError:
        return False


def _still_valid(record: dict, out_root: Path) -> bool:
    if record["status"] in ("skipped", "failed"):
        return True
    return bool(record["crop"]) and _crop_is_complete(out_root / record["crop"])


def _check_settings(out_root: Path, settings: CropSettings, variant: str) -> None:
    params = out_root / "settings.json"
    wanted = {"variant": variant, **asdict(settings)}
    if params.is_file():
        found = json.loads(params.read_text())
        # A folder made before a setting existed is read with that setting's default,
        # so adding a setting does not throw away every crop made so far.
        if {**asdict(CropSettings()), **found} != wanted:
            raise ConfigError(
                f"{out_root} was made with other settings ({found}); delete that folder "
                "to redo it with the new ones"
            )
    else:
        out_root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(params, wanted)


def read_manifest(out_root: Path) -> list[dict]:
    """The manifest of a finished preprocessing run."""
    path = out_root / "manifest.csv"
    if not path.is_file():
        raise FacelibError(f"no manifest in {out_root}: run `facelib preprocess` first")
    return _read_records(path)


def preprocess_dataset(
    images_root: Path,
    settings: CropSettings | None = None,
    variant: str | None = None,
    limit: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    only: set[str] | None = None,
    out_root: Path | None = None,
) -> Summary:
    """Crop every image under `images_root` (or the first `limit`, sorted by path; or
    `only` those whose path relative to `images_root` is in the set) into `out_root`
    (default: data/processed/<variant>-<detector>-<size>)."""
    settings = settings or CropSettings()
    variant = variant or images_root.name
    out_root = Path(out_root) if out_root else output_dir(variant, settings)
    _check_settings(out_root, settings, variant)
    settings.make_detector()  # fail here, clearly, before any worker starts

    sources = list_images(images_root)[:limit]
    if only is not None:
        sources = [p for p in sources if p.relative_to(images_root).as_posix() in only]
    if not sources:
        raise FacelibError(f"no images found under {images_root}")
    manifest, journal = out_root / "manifest.csv", out_root / "manifest.partial.csv"
    done = {
        r["source"]: r for r in _read_records(manifest) + _read_records(journal) if _still_valid(r, out_root)
    }
    relsource = {p: p.relative_to(images_root.parent).as_posix() for p in sources}
    jobs = [(p, relsource[p], out_root, settings) for p in sources if relsource[p] not in done]

    start = time.perf_counter()
    if jobs:
        workers = workers or os.cpu_count() or 1
        journal_is_new = not journal.is_file()
        with open(journal, "a", newline="") as jf:
            writer = csv.DictWriter(jf, FIELDS)
            if journal_is_new:
                writer.writeheader()
            # spawn, not fork: the caller (a notebook) may have TensorFlow loaded
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, _init_worker, (settings,)) as pool:
                results = pool.imap_unordered(_work, jobs, chunksize=16)
                for record in tqdm(
                    results, total=len(jobs), desc="preprocess", unit=" img", disable=not progress
                ):
                    writer.writerow(record)
                    jf.flush()
                    done[record["source"]] = record
    seconds = time.perf_counter() - start

    wanted = set(relsource.values())
    records = sorted(done.values(), key=lambda r: r["source"])  # all done so far, not only this run's
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(records)
    journal.unlink(missing_ok=True)
    return Summary(
        out_dir=str(out_root),
        total=len(sources),
        processed_now=len(jobs),
        reused=len(sources) - len(jobs),
        seconds=round(seconds, 2),
        counts=dict(Counter(r["status"] for r in records if r["source"] in wanted)),
    )


def ensure_crops(
    settings: CropSettings | None = None,
    limit: int | None = None,
    progress: bool = True,
    only: set[str] | None = None,
) -> Path:
    """Fetch LFW and crop its faces unless that is already done; returns the crop folder.
    Cheap when done: a re-run only checks the manifest and the crops it lists."""
    settings = settings or CropSettings()
    images_root = fetch_lfw()
    preprocess_dataset(images_root, settings, limit=limit, progress=progress, only=only)
    return output_dir(images_root.name, settings)
