"""Atomic file writes: a reader sees the old file or the new one, never half of one.

    write_atomic(path, b"...")            # bytes or str
    write_json_atomic(path, {"a": 1})
    with atomic_path(path) as tmp: model.save(tmp)   # for writers that want a file name

Each write goes to a unique temporary name in the same folder, is flushed to disk
(fsync) and renamed over the target in one step; a crash leaves at most a stray
`.part` file, never a damaged target.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facelib.core.errors import FacelibError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


def _fsync_folder(folder: Path) -> None:
    # The rename itself is durable only once the folder entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, durable: bool = True) -> Iterator[Path]:
    """A unique temporary path beside `path`; renamed onto `path` when the block ends
    without error, deleted otherwise. `suffix` keeps an extension writers insist on
    (Keras wants `.keras`). `durable=False` skips the fsyncs, for files that can be
    remade and are checked when read (face crops: a fsync each would cost a minute)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".part")
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; give the usual mode
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes | str, durable: bool = True) -> Path:
    """Write `data` (str as UTF-8) to `path` atomically; returns the path."""
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return write_atomic(path, json.dumps(data, indent=2, default=str))


def check_name(name: str) -> str:
    """A person's or a calibration's name, stripped; refused when empty or shaped like a
    path, so no name can point a file outside its folder (the gallery, calibrations/)."""
    name = name.strip()
    if not name:
        raise FacelibError("give the person a name before enrolling")
    if "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise FacelibError(f"{name!r} is not a usable name: no slashes, and not '.' or '..'")
    return name
