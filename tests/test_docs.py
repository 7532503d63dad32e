"""The documentation's examples run: docstring examples of the public API, and the README's
Python block."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, random_image
from PIL import Image

import dcae.codec
import dcae.codecs
import dcae.pillow


@pytest.mark.parametrize("module", [dcae.codec, dcae.codecs, dcae.pillow])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    assert blocks, "the README has a Python example"
    monkeypatch.chdir(tmp_path)
    Image.fromarray(random_image(96, 128)).save(tmp_path / "photo.png")
    for block in blocks:
        namespace: dict = {"np": np}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
