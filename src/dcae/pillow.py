"""``.dcae`` as a Pillow image format: ``Image.open``, ``Image.save`` and ``.dcae`` in Pillow's
extension list.

>>> import dcae.pillow
>>> dcae.pillow.register()
>>> from PIL import Image
>>> ".dcae" in Image.registered_extensions()
True

Then ``Image.open("photo.dcae")`` reads the header (size and colour mode known at once) and
decodes the pixels on ``load()`` with the released model that wrote the file;
``image.save("photo.dcae", quality=3)`` codes an image (``quality`` is dcae's 0..5 scale, not
JPEG's; ``target_size``, ``target_bpp``, ``model`` and ``optimize`` work as on the command
line; ``icc_profile``, ``exif`` and ``xmp`` replace the image's own). Transparency, the ICC
profile, EXIF and XMP travel through the file: an opened ``.dcae`` has them in ``info``
(``getexif()`` reads it) and its mode's alpha. ``import dcae.pillow_plugin`` registers on
import. Pillow's conventions hold: a file that is not a ``.dcae`` file is left to the other
plugins, and a damaged one raises ``OSError`` with dcae's message.
"""

from __future__ import annotations

from typing import IO, Any

from PIL import Image, ImageFile

from . import bitstream
from .codecs import CodecCache
from .errors import DcaeError

FORMAT = "DCAE"
EXTENSION = ".dcae"
# Decoded and saved files reuse loaded models: loading one costs more than coding a small image.
_CODECS_KEPT = 2


def _pil_mode(colour_mode: bitstream.ColourMode) -> str:
    return {
        bitstream.ColourMode.RGB: "RGB",
        bitstream.ColourMode.L: "L",
        bitstream.ColourMode.P: "P",
        bitstream.ColourMode.RGBA_OPAQUE: "RGBA",
        bitstream.ColourMode.LA_OPAQUE: "LA",
        bitstream.ColourMode.RGBA: "RGBA",
        bitstream.ColourMode.LA: "LA",
    }[colour_mode]


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == bitstream.MAGIC


def register() -> None:
    """Make ``.dcae`` a Pillow format (opening, saving, the extension). Calling it again is harmless."""
    codecs = CodecCache(keep=_CODECS_KEPT)

    class DcaeImageFile(ImageFile.ImageFile):
        format = FORMAT
        format_description = "DCAE learned image codec"

        def _open(self) -> None:
            data = self.fp.read()
            try:
                header, _ = bitstream.unpack(data)  # the whole file is checked (CRC) before it is claimed
            except DcaeError as error:
                raise OSError(f"damaged .dcae file: {error}") from None
            self._data = data
            self._size = (header.width, header.height)
            self._mode = _pil_mode(header.colour_mode)
            self.info["dcae_quality"] = header.quality
            self.info["dcae_model"] = header.digest.hex()
            parts = header.side_parts or bitstream.SideParts()
            for key, value in (("icc_profile", parts.icc_profile), ("exif", parts.exif), ("xmp", parts.xmp)):
                if value is not None:  # as other formats' plugins do; getexif() reads info["exif"]
                    self.info[key] = value
            self.tile = []

        def load(self) -> Any:
            if self._data is not None:
                try:
                    decoded = codecs.for_file(self._data).decompress(self._data)
                except DcaeError as error:
                    raise OSError(str(error)) from None
                image = decoded.to_pil()
                image.load()
                self.im = image.im
                if image.mode == "P":
                    self.palette = image.palette.copy()
                self._data = None
            return Image.Image.load(self)

    def save(image: Image.Image, fp: IO[bytes], _filename: "str | bytes") -> None:
        options = image.encoderinfo
        given = {key: options[key] for key in ("icc_profile", "exif", "xmp") if options.get(key) is not None}
        if given:  # the save's own profile and metadata win over the image's
            image = image.copy()
            image.info.update({k: v.tobytes() if isinstance(v, Image.Exif) else bytes(v) for k, v in given.items()})
        try:
            codec = codecs.get(
                str(options.get("model", "default")),
                portable=not options.get("machine_specific", False),
                optimize_steps=int(options.get("optimize", 0)),
            )
            compressed = codec.compress(
                image,
                quality=options.get("quality"),
                target_bpp=options.get("target_bpp"),
                target_size=options.get("target_size"),
            )
        except DcaeError as error:
            raise OSError(str(error)) from None
        fp.write(compressed.data)

    Image.register_open(FORMAT, DcaeImageFile, _accept)
    Image.register_save(FORMAT, save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, "image/x-dcae")
