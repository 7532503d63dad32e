"""Entropy coding of integer symbols into one rANS stream (constriction), with escapes.

Every symbol is coded with a :class:`CategoricalTable` whose last entry is an escape. A value
outside the table's alphabet is coded as the escape followed by its sign, bit length and bits
under uniform models, so any value with magnitude below 2^31 round-trips exactly.
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import CodingError
from .tables import CategoricalTable

MAX_ESCAPE_BITS = 31
_BIT_CHUNK = 16


# constriction's classes live in a compiled module, reachable only as attributes.
Categorical = constriction.stream.model.Categorical
Uniform = constriction.stream.model.Uniform
AnsCoder = constriction.stream.stack.AnsCoder


class ModelCache:
    """constriction models built once per table (building one is the costly part)."""

    def __init__(self) -> None:
        self._models: dict[int, tuple[object, CategoricalTable]] = {}

    def get(self, table: CategoricalTable) -> object:
        entry = self._models.get(id(table))
        if entry is None:
            # Keep the table referenced so its id() cannot be reused by another object.
            entry = (Categorical(table.probs, perfect=False), table)
            self._models[id(table)] = entry
        return entry[0]


class SymbolEncoder:
    """Collects symbol chunks in decoding order, then writes them as one stream."""

    def __init__(self, models: "ModelCache | None" = None) -> None:
        self._chunks: list[tuple[np.ndarray, object]] = []
        self._models = models or ModelCache()

    def add(self, values: np.ndarray, table: CategoricalTable) -> None:
        """Queue integer ``values`` (any shape, coded in C order) under ``table``."""
        values = np.asarray(values, dtype=np.int64).ravel()
        if values.size == 0:
            return
        escape_symbol = len(table.probs) - 1
        symbols = values - table.low
        escaped = (symbols < 0) | (symbols >= escape_symbol)
        symbols[escaped] = escape_symbol
        self._chunks.append((symbols.astype(np.int32), self._models.get(table)))
        for value in values[escaped]:
            self._add_escape(int(value), table)

    def _add_escape(self, value: int, table: CategoricalTable) -> None:
        above = value > table.high
        magnitude = value - table.high - 1 if above else table.low - value - 1
        if magnitude >= 2**MAX_ESCAPE_BITS:
            raise CodingError(f"latent value {value} is beyond the codable range (|value| < 2^31)")
        bits = magnitude.bit_length()
        self._chunks.append((np.array([0 if above else 1, bits], dtype=np.int32), Uniform(MAX_ESCAPE_BITS + 1)))
        remaining = bits - 1  # the leading 1 is implied by the bit length
        while remaining > 0:
            width = min(_BIT_CHUNK, remaining)
            remaining -= width
            part = (magnitude >> remaining) & ((1 << width) - 1)
            self._chunks.append((np.array([part], dtype=np.int32), Uniform(1 << width)))

    def finish(self) -> bytes:
        """The coded stream; rANS is last-in first-out, so chunks are written in reverse."""
        coder = AnsCoder()
        for symbols, model in reversed(self._chunks):
            coder.encode_reverse(symbols, model)
        return coder.get_compressed().astype("<u4").tobytes()


class SymbolDecoder:
    """Reads chunks back in the order they were added to the :class:`SymbolEncoder`."""

    def __init__(self, data: bytes, models: "ModelCache | None" = None) -> None:
        if len(data) % 4:
            raise CodingError("entropy-coded payload length is not a multiple of 4 bytes")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._coder = AnsCoder(words)
        except (ValueError, RuntimeError) as error:
            raise CodingError(f"corrupt entropy-coded payload: {error}") from None
        self._models = models or ModelCache()

    def take(self, count: int, table: CategoricalTable) -> np.ndarray:
        """Decode ``count`` values (int64) coded with ``table``."""
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        try:
            symbols = self._coder.decode(self._models.get(table), count).astype(np.int64)
        except (ValueError, RuntimeError) as error:
            raise CodingError(f"corrupt entropy-coded payload: {error}") from None
        escape_symbol = len(table.probs) - 1
        values = symbols + table.low
        for position in np.flatnonzero(symbols == escape_symbol):
            values[position] = self._take_escape(table)
        return values

    def _take_escape(self, table: CategoricalTable) -> int:
        sign, bits = (int(v) for v in self._coder.decode(Uniform(MAX_ESCAPE_BITS + 1), 2))
        if sign > 1 or bits > MAX_ESCAPE_BITS:
            raise CodingError("corrupt escape code in the payload")
        magnitude = 1 if bits else 0
        remaining = bits - 1
        while remaining > 0:
            width = min(_BIT_CHUNK, remaining)
            remaining -= width
            magnitude = (magnitude << width) | int(self._coder.decode(Uniform(1 << width), 1)[0])
        return table.high + 1 + magnitude if sign == 0 else table.low - 1 - magnitude

    def exhausted(self) -> bool:
        """Whether every coded word has been consumed."""
        return self._coder.is_empty()
