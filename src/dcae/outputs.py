"""The output policy of every front end: where results go, checked before any work, and how they
are written.

* Planned before any work: an output never replaces an input, two inputs never write one
  output, an existing output needs ``force``, the folder must exist (one missing level is made
  for ``-o DIR/``, never a tree from a typo) and must be writable.
* Written to a temporary file and moved into place exclusively (:func:`dcae.files.atomic_write`),
  so the no-overwrite rule also holds for a file that appears while the work runs.
* Decoded images get names of their own (``photo.dcae`` -> ``photo.decoded.png``), so a
  default never points at the photo that was compressed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import OutputError
from .files import atomic_write


def decoded_name(source: Path, suffix: str = ".png", preview_slices: "int | None" = None) -> Path:
    """The default image name for a decoded ``source`` (``photo.dcae`` -> ``photo.decoded.png``,
    a preview of K slices ``photo.preview-K.png``): never the name of the photo it came from."""
    kind = "decoded" if preview_slices is None else f"preview-{preview_slices}"
    return source.with_name(f"{source.stem}.{kind}{suffix}")


def _identity(path: Path) -> Any:
    """A key equal for two paths that name the same file (hard links and symlinks included)."""
    try:
        status = path.stat()
        return (status.st_dev, status.st_ino)
    except OSError:
        return os.path.normcase(os.path.abspath(path))


def check_writable(folder: Path) -> None:
    """Raise :class:`OutputError` unless a file can be created in ``folder`` (tried, not guessed:
    permissions, read-only file systems and full disks all show)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".dcae-probe-", dir=folder)
    except OSError as error:
        raise OutputError(f"cannot write into {folder}: {error.strerror or error}") from None
    os.close(fd)
    os.unlink(probe)


def plan_outputs(
    inputs: Sequence[Path],
    output: "str | None",
    suffix: str,
    force: bool,
    default: "Callable[[Path], Path] | None" = None,
) -> list[Path]:
    """Where each input's result goes, checked before any work: ``default(input)`` (else the
    input with ``suffix``) without ``output``; into a folder for several inputs or an ``output``
    that is a folder or ends in a separator; else the file ``output``."""
    default = default or (lambda path: path.with_suffix(suffix))
    if output is None:
        outputs = [default(p) for p in inputs]
    else:
        out = Path(output)
        if len(inputs) > 1 or out.is_dir() or output.endswith((os.sep, "/")):
            if out.exists() and not out.is_dir():
                raise OutputError(f"{out} is not a folder; with several inputs, -o must name a folder")
            if not out.exists() and not out.parent.is_dir():
                raise OutputError(f"cannot create folder {out}: its parent {out.parent} does not exist")
            outputs = [out / default(Path(p.name)).name for p in inputs]
        else:
            if not out.parent.is_dir():
                raise OutputError(f"cannot write {out}: folder {out.parent} does not exist")
            outputs = [out]
    sources = {_identity(p): p for p in inputs}
    seen: dict[Any, Path] = {}
    for source, target in zip(inputs, outputs):
        key = _identity(target)
        if key in sources:
            raise OutputError(f"{target} is an input; writing it would destroy {sources[key]}")
        if key in seen:
            raise OutputError(f"{seen[key]} and {source} would both be written to {target}; use separate -o folders")
        seen[key] = source
        if target.exists() and not force:
            raise OutputError(f"{target} exists; use --force to overwrite it")
    for folder in {o.parent for o in outputs}:
        if not folder.exists():
            folder.mkdir()
        check_writable(folder)
    return outputs


def write_output(path: Path, write: Callable[[str], object], force: bool) -> None:
    """Write ``path`` through ``write(temporary_path)``; an existing file (one that appeared
    since planning included) is replaced only with ``force``."""
    atomic_write(path, write, replace=force)
