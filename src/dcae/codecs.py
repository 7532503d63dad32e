"""Codec lookup for every front end: a model name, a weights path or the digest a file names,
to a loaded :class:`dcae.codec.Codec`, kept for reuse (loading a model costs more than coding a
small image).

>>> from dcae.codecs import CodecCache
>>> codecs = CodecCache()
>>> codecs.get("default") is codecs.get("compact-mse-v1", portable=True)  # an alias, a default option
True
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from . import bitstream
from .errors import ModelMismatchError
from .zoo import find_by_digest, missing_model_message, resolve_model_path


class CodecCache:
    """Codecs by (model, device, options), loaded on first use; the ``keep`` most recently used
    stay loaded.

    Args:
        keep: how many codecs to keep.
        device: where loaded models go (``None``: the CPU).
    """

    def __init__(self, keep: int = 4, device: Any = None) -> None:
        self.keep = keep
        self.device = device
        self._loaded: OrderedDict[tuple, Any] = OrderedDict()

    def get(self, model: str = "default", **options: Any) -> Any:
        """The codec of ``model`` (a release name or a weights file) with these
        :class:`dcae.codec.CodecOptions` fields."""
        from .codec import CodecOptions, load_codec  # loads PyTorch

        key = (str(resolve_model_path(model)), CodecOptions(**options))
        if key not in self._loaded:
            self._loaded[key] = load_codec(model, device=self.device, **options)
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(key)
        return self._loaded[key]

    def for_file(self, data: bytes, model: "str | None" = None, **options: Any) -> Any:
        """The codec that decodes ``data``: ``model`` when given, else the released model whose
        digest the file's header names (:class:`ModelMismatchError` when none is installed)."""
        if model is None:
            digest = bitstream.model_digest(data)
            writer = find_by_digest(digest)
            if writer is None or not writer.available:
                raise ModelMismatchError(missing_model_message(digest))
            model = writer.name
        return self.get(model, **options)
