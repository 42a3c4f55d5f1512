"""facelib: face verification with a ResNet50 trained by triplet loss on LFW.

Modules by task: `config` (paths, presets), `datasets` (LFW), `images` (reading
input), `detection` (face detectors), `crop`, `preprocess`, `cli`.
"""

from facelib.errors import FacelibError, ImageError, NoFaceError

__version__ = "0.1.0"
__all__ = ["FacelibError", "ImageError", "NoFaceError", "__version__"]
