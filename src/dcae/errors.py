"""The errors dcae raises for problems a user can fix, in one module without dependencies.

Every one derives from :class:`DcaeError` (a ``ValueError``), so a caller can catch them all,
and the command line can report them as one line without importing the rest of the package.
"""

from __future__ import annotations

# Exit statuses of the command line: done, a mistake the user can fix, a bug, interrupted.
EXIT_OK, EXIT_USER_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 130


class DcaeError(ValueError):
    """A problem with what was asked of dcae (inputs, files, settings), not a bug in dcae."""


class FormatError(DcaeError):
    """The bytes are not a valid ``.dcae`` file (foreign, truncated, corrupted or unsupported)."""


class LatentMismatchError(FormatError):
    """The decoded latents differ from those the encoder coded (their checksum disagrees).

    The entropy coder needs the decoder to predict every probability exactly as the encoder
    did. Machine-specific files compute those predictions in float32, whose last bits differ
    between machines (another processor's vector width, a GPU, another PyTorch); decoding then
    goes wrong from the first differing symbol on. The checksum turns that into this error
    instead of a wrong image.
    """


class ModelMismatchError(DcaeError):
    """A file was written with different weights than the codec holds."""


class QualityError(DcaeError):
    """A quality (or rate target) the model cannot honour."""


class CodingError(DcaeError):
    """Symbols cannot be coded (a latent value is beyond the codable range) or decoded."""


class ImageError(DcaeError):
    """An input image cannot be read or is not supported."""


class WeightsError(DcaeError):
    """A weights file is missing, unreadable, or not a dcae weights file."""


class ConfigError(DcaeError):
    """A configuration is invalid: a model's, a training run's, or a codec's options."""


class DataError(DcaeError):
    """The training or validation data cannot be used (missing folder, no images)."""


class ResourceError(DcaeError):
    """The machine cannot do what was asked (an image too large for its memory)."""


class OutputError(DcaeError):
    """An output cannot be written: it exists (and replacing it was not asked for), or its
    folder cannot be written."""


class InputError(DcaeError):
    """An input file cannot be read: missing, a folder, a broken symbolic link."""


class UsageError(DcaeError):
    """A mistake on the command line (an impossible combination of flags, for example)."""
