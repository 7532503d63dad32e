"""Write the golden files of one released model: small .dcae files and the pixels they decode to.

    python scripts/make_golden.py --model compact-mse-v1 [--out tests/golden] [--add-side-parts]

Run once when a model version is released (never again for that version: the files stand for
what users hold). Each file is a crop of a Kodak photo, coded in one of the ways a user's file
may have been written: portable (the default) at three qualities, a grayscale source, a
machine-specific file (float32 entropy parameters) and a format-version-1 file (which has no
latent checksum and was always machine-specific). `tests/test_golden.py` decodes them all, and
checks that the release's probability tables still code every symbol as they did then
(`tables.json`, a fingerprint of the coder).

``--add-side-parts`` adds, to a release's existing golden files and without touching them,
files in a format introduced after the release: version 4, an RGBA crop with a soft alpha
plane, an ICC profile, EXIF and XMP (run once, when that format appeared).

Machine-specific files decode only where the entropy parameters compute like here, so their
crops are chosen to be robust: each must still decode with PyTorch's other convolution (oneDNN
off) and with every slice's predicted means and scales perturbed by 1e-6 relative noise (about
ten times the largest difference measured between two convolution implementations).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms, PngImagePlugin

from dcae import bitstream
from dcae.codec import load_codec
from dcae.errors import LatentMismatchError
from dcae.model import DCAE, SliceContext
from dcae.zoo import resolve_model_path

KODAK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "kodak"
ORIGINAL_SLICE_CONTEXT = DCAE.slice_context


def _perturbed(noise: float, seed: int):
    def slice_context(self: DCAE, index: int, hyper: torch.Tensor, previous: list[torch.Tensor]) -> SliceContext:
        ctx = ORIGINAL_SLICE_CONTEXT(self, index, hyper, previous)
        generator = torch.Generator().manual_seed(seed * 100 + index)
        factor = 1 + noise * torch.randn(ctx.scale.shape, generator=generator, dtype=torch.float64)
        return SliceContext(
            ctx.mean * factor.to(ctx.mean.dtype), ctx.scale * factor.flip(-1).to(ctx.scale.dtype), ctx.support
        )

    return slice_context


def decodes_robustly(codec, data: bytes, expected: np.ndarray, check_pixels: bool) -> bool:
    """Whether ``data`` decodes to ``expected`` (within a level) under perturbed arithmetic."""
    trials = [("onednn-off", None)] + [("noise", seed) for seed in range(6)]
    for kind, seed in trials:
        try:
            if kind == "onednn-off":
                torch.backends.mkldnn.enabled = False
            else:
                DCAE.slice_context = _perturbed(1e-6, seed)
            decoded = codec.decompress(data).pixels
        except LatentMismatchError:
            return False
        finally:
            torch.backends.mkldnn.enabled = True
            DCAE.slice_context = ORIGINAL_SLICE_CONTEXT
        if check_pixels and np.abs(decoded.astype(int) - expected).max() > 2:
            return False
    return True


def crop(name: str, top: int, left: int, height: int, width: int) -> np.ndarray:
    array = np.asarray(Image.open(KODAK / name).convert("RGB"))
    return np.ascontiguousarray(array[top : top + height, left : left + width])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="released model name")
    parser.add_argument("--out", type=Path, default=Path("tests/golden"))
    parser.add_argument("--add-side-parts", action="store_true", help="add version 4 files to a release's")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = args.out / args.model
    folder.mkdir(parents=True, exist_ok=True)
    portable = load_codec(args.model, portable=True)
    fast = load_codec(args.model, portable=False)
    entries = json.loads((folder / "manifest.json").read_text()) if args.add_side_parts else []

    def record(name: str, data: bytes, decoder, source: str) -> None:
        header, _ = bitstream.unpack(data)
        decoded = decoder.decompress(data)
        (folder / f"{name}.dcae").write_bytes(data)
        decoded.to_pil().save(folder / f"{name}.png")  # RGBA where the file has an alpha plane
        parts = header.side_parts or bitstream.SideParts()
        carried = {k: v for k, v in (("icc_profile", parts.icc_profile), ("exif", parts.exif), ("xmp", parts.xmp)) if v}
        entries.append(
            {
                "file": f"{name}.dcae",
                "expected": f"{name}.png",
                "source": source,
                "model": args.model,
                "digest": header.digest.hex(),
                "format_version": data[4],
                "portable": header.portable,
                "quality": header.quality,
                "colour_mode": header.colour_mode.name,
                "size": [header.width, header.height],
                "sha256": hashlib.sha256(data).hexdigest(),
                "side_parts_sha256": {key: hashlib.sha256(value).hexdigest() for key, value in carried.items()},
            }
        )
        print(f"{name}: {len(data)} bytes, {header.width}x{header.height}, format {data[4]}")

    if args.add_side_parts:
        image = crop("kodim23.png", 200, 300, 80, 120)
        rows, cols = np.mgrid[0:80, 0:120]
        alpha = np.clip(255 * (1.6 - np.hypot((rows - 40) / 36, (cols - 60) / 54)) * 2, 0, 255).astype(np.uint8)
        source = Image.fromarray(np.dstack([image, alpha]), "RGBA")
        exif = Image.Exif()
        exif[271], exif[272] = "dcae", "golden"  # Make, Model
        buffer = io.BytesIO()
        source.save(
            buffer,
            format="PNG",
            icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
            exif=exif,
            pnginfo=_xmp_chunk(),
        )
        data = portable.compress(Image.open(io.BytesIO(buffer.getvalue())), quality=2.5).data
        record("sideparts-rgba-q2.5", data, portable, "kodim23 crop 120x80, soft alpha, sRGB profile, EXIF, XMP")
        (folder / "manifest.json").write_text(json.dumps(entries, indent=2) + "\n")
        print(f"added version 4 golden files to {folder}")
        return

    # Portable files: any crop decodes everywhere; sizes that are not multiples of 64 test the padding.
    image = crop("kodim23.png", 200, 300, 80, 120)
    for quality in (0.0, 2.5, 5.0):
        record(
            f"portable-q{quality:g}", portable.compress(image, quality=quality).data, portable, "kodim23 crop 120x80"
        )
    gray = np.asarray(Image.fromarray(crop("kodim08.png", 100, 100, 72, 72)).convert("L"))
    record("portable-gray-q3", portable.compress(gray, quality=3.0).data, portable, "kodim08 crop 72x72, grayscale")

    # Machine-specific files: the first robust 64x64 crop.
    for top, left in [(t, w) for t in range(0, 448, 64) for w in range(0, 704, 96)]:
        image = crop("kodim14.png", top, left, 64, 64)
        data = fast.compress(image, quality=2.5).data
        expected = fast.decompress(data).pixels
        header, payload = bitstream.unpack(data)
        version1 = bitstream.pack(dataclasses.replace(header, latent_checksum=None), payload)
        if decodes_robustly(fast, data, expected, check_pixels=True) and decodes_robustly(
            fast, version1, expected, check_pixels=True
        ):
            source = f"kodim14 crop 64x64 at ({left}, {top})"
            record("fast-q2.5", data, fast, source)
            record("format1-q2.5", version1, fast, source)
            break
    else:
        raise SystemExit("no robust crop found for the machine-specific files")
    (folder / "manifest.json").write_text(json.dumps(entries, indent=2) + "\n")
    size = portable.options.scale_table_size
    tables = {"scale_table_size": size, "fingerprint": portable.latents.table_fingerprint(size)}
    (folder / "tables.json").write_text(json.dumps(tables, indent=2) + "\n")
    print(f"wrote {len(entries)} golden files to {folder} (model file {resolve_model_path(args.model)})")


def _xmp_chunk() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    return info


if __name__ == "__main__":
    main()
