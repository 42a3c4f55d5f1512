"""facelib: face verification with a ResNet50 trained by triplet loss on LFW.

    import facelib
    facelib.verify("a.jpg", "b.jpg").same_person
    facelib.FaceVerifier("models/cpu-batch_hard-112").embed([...])

Packages by layer, each importing only from those below it (README, "Contributing"):
`app` (cli, dashboard), `training`, `evaluation`, `recognition` (model, card,
calibration, verification, identification, gallery), `data` (LFW, folders, detection,
crop, preprocess, tf.data pipeline) and `core` (config, errors, files, machine,
decision, metrics). TensorFlow loads only when a model is used; `core.machine` chooses
its math first.
"""

from facelib.core import machine
from facelib.core.errors import FacelibError, ImageError, ImageTooLargeError, NoFaceError

# The one place that runs before any facelib module can load TensorFlow, which reads
# its oneDNN setting once: the CLI and notebooks may name another role before it loads.
machine.configure_default()

__version__ = "0.1.0"
__all__ = [
    "FaceVerifier",
    "FacelibError",
    "ImageError",
    "ImageTooLargeError",
    "NoFaceError",
    "verify",
    "__version__",
]


def __getattr__(name: str):
    # Lazy: `import facelib` stays fast for the CLI's data verbs.
    if name in ("FaceVerifier", "verify", "VerifyResult"):
        from facelib.recognition import verification

        return getattr(verification, name)
    raise AttributeError(f"module 'facelib' has no attribute {name!r}")
