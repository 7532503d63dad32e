"""Pack the training photos into a compact folder for a lent GPU machine (about 42 MB).

    python scripts/make_train_pack.py ../shared/datasets/train .pack/train --short-side 256 --quality 85

Every readable image is downscaled so its shorter side is ``--short-side`` pixels (which also
hides JPEG block artefacts of the sources) and stored as a progressive JPEG with full-resolution
chroma (4:4:4) and optimised Huffman tables. Kodak is never included.

The pack is the training target, so its own coding noise matters: on 200 of the photos, quality
85 with PIL's default 4:2:0 chroma came back at 34.4 dB PSNR against the downscaled photo,
4:4:4 at 35.8 dB for 22% more bytes (progressive coding wins back 5%). 42 MB still travels with
the repository (about 20 MB) within the 64 MiB a device call takes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from dcae.files import find_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--short-side", type=int, default=256)
    parser.add_argument("--quality", type=int, default=85)
    args = parser.parse_args()
    if "kodak" in str(args.source).lower():
        raise SystemExit("refusing to pack Kodak: it is the test set")
    args.target.mkdir(parents=True, exist_ok=True)
    total = 0
    for index, path in enumerate(find_images(args.source)):
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                scale = args.short_side / min(image.size)
                if scale < 1:
                    size = (round(image.width * scale), round(image.height * scale))
                    image = image.resize(size, Image.Resampling.LANCZOS)
                out = args.target / f"{index:05d}.jpg"
                image.save(out, quality=args.quality, subsampling=0, optimize=True, progressive=True)
                total += out.stat().st_size
        except OSError as error:
            print(f"skipped {path}: {error}")
    print(f"wrote {index + 1} images, {total / 1e6:.1f} MB, to {args.target}")


if __name__ == "__main__":
    main()
