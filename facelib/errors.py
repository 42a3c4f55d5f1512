"""facelib's exceptions: each carries a message meant for the user, not a traceback."""


class FacelibError(Exception):
    """Base of every error facelib raises on purpose."""


class ConfigError(FacelibError):
    """A setting or argument has a value facelib cannot use."""


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
