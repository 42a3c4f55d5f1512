"""facelib's exceptions: each carries a message meant for the user, not a traceback.

A message is a complete sentence in the library's own terms, for a notebook or the
dashboard as much as the command line. Where a front end has its own advice (a flag to
pass), the error carries the facts as fields and the front end adds the advice where it
catches it (facelib.app.cli.hint).
"""


class FacelibError(Exception):
    """Base of every error facelib raises on purpose."""


class ConfigError(FacelibError):
    """A setting or argument has a value facelib cannot use."""


class RunFolderError(ConfigError):
    """A training run's folder cannot be used as asked: it holds a finished run, an
    interrupted one, or files that are not a run. `run` names it; `resumable` says
    whether continuing it is a way out (the command line: --resume), else only a run
    under another name is (--name)."""

    def __init__(self, message: str, run: str, resumable: bool = False):
        super().__init__(message)
        self.run, self.resumable = run, resumable


class DataUnavailableError(FacelibError):
    """A dataset file is missing and cannot be downloaded (offline, no mirror)."""


class ChecksumError(FacelibError):
    """A downloaded or mirrored file does not have the pinned checksum."""


class UnsafeArchiveError(FacelibError):
    """An archive holds a member that would land outside its target folder."""


class ImageError(FacelibError):
    """Image data cannot be read: empty, truncated, not an image, too large."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured limit."""


class NoFaceError(FacelibError):
    """No face was found in an image."""


class DetectorUnavailableError(FacelibError):
    """The requested face detector cannot be built (e.g. its model file is missing)."""


class CorruptArchiveError(FacelibError):
    """An archive cannot be read to the end (an interrupted download or copy)."""
