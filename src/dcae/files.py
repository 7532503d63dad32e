"""Files on disk: finding images in a folder tree and writing outputs atomically."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import DataError, DcaeError, InputError, OutputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm"}


def check_readable(path: Path, what: str = "file", error_type: type[DcaeError] = InputError) -> None:
    """Raise ``error_type`` unless ``path`` names an existing file, saying what is wrong:
    missing, a dangling or looping symbolic link, a folder."""
    try:
        status = path.stat()
    except FileNotFoundError:
        dangling = path.is_symlink()
        raise error_type(f"{what} not found: {path}" + (" (a symbolic link to nothing)" if dangling else "")) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise error_type(f"{path} is a loop of symbolic links") from None
        raise error_type(f"cannot read {path}: {error.strerror or error}") from None
    if stat.S_ISDIR(status.st_mode):
        raise error_type(f"expected a {what}, got a folder: {path}")


def find_images(root: "str | Path") -> list[Path]:
    """All image files under ``root`` (recursively), sorted for reproducibility."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"data path is not a folder: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    return files


def atomic_write(path: "str | Path", write: Callable[[str], object], replace: bool = True) -> None:
    """Call ``write(tmp_path)`` then move the temporary file onto ``path``: readers see the old
    file or the complete new one, never a half-written one, and a failure leaves no temporary.

    With ``replace=False`` the move is exclusive (a hard link, which fails when ``path`` exists):
    a file that exists at that moment, even one that appeared while ``write`` ran, is left as it
    is and :class:`OutputError` is raised. Where hard links are not supported, ``path`` is
    first created exclusively and then replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        if replace:
            os.replace(tmp, path)
        else:
            _move_exclusively(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _move_exclusively(tmp: str, path: Path) -> None:
    appeared = OutputError(f"{path} appeared while dcae was working; it was left as it is (--force replaces it)")
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise appeared from None
    except OSError:  # a file system without hard links: claim the name, then fill it
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            raise appeared from None
        os.replace(tmp, path)
