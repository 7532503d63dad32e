"""Reports of an evaluation: JSON files, a Bjontegaard table, an RD plot and an HTML page."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..codecs import CodecCache
from ..imageio import load_image
from ..metrics import psnr
from ..outputs import write_output
from .bdrate import bd_rate
from .classic import CLASSIC_CODECS
from .runner import DCAE_KEY, CodecResult


def load_anchor_files(folder: "str | Path | None") -> dict[str, dict[str, Any]]:
    """Published or earlier-measured curves (CompressAI JSON layout) from a folder."""
    anchors: dict[str, dict[str, Any]] = {}
    if folder is None:
        return anchors
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            if "bpp" in data["results"] and "psnr-rgb" in data["results"]:
                anchors[path.stem] = data
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return anchors


def _clip_to_range(rate: list, quality: list, bpp_range: "tuple[float, float] | None") -> tuple[list, list]:
    """Points inside ``bpp_range`` plus the nearest point outside on each side (so the fit spans it)."""
    pairs = sorted((r, q) for r, q in zip(rate, quality) if r is not None and q is not None)
    if bpp_range is None or not pairs:
        return [p[0] for p in pairs], [p[1] for p in pairs]
    low, high = bpp_range
    inside = [i for i, (r, _) in enumerate(pairs) if low <= r <= high]
    if not inside:
        return [], []
    first, last = max(0, inside[0] - 1), min(len(pairs) - 1, inside[-1] + 1)
    kept = pairs[first : last + 1]
    return [p[0] for p in kept], [p[1] for p in kept]


def bd_table(
    test: dict[str, Any], references: dict[str, dict[str, Any]], bpp_range: "tuple[float, float] | None" = None
) -> list[dict[str, Any]]:
    """BD-rate of ``test`` against every reference curve, for PSNR and (where present) MS-SSIM dB."""
    rows = []
    t = test["results"]
    for name, ref in references.items():
        r = ref["results"]
        row: dict[str, Any] = {"anchor": name, "description": ref.get("description", "")}
        ra, qa = _clip_to_range(r["bpp"], r["psnr-rgb"], bpp_range)
        rt, qt = _clip_to_range(t["bpp"], t["psnr-rgb"], bpp_range)
        row["bd_rate_psnr"] = bd_rate(ra, qa, rt, qt)
        row["bd_rate_msssim"] = math.nan
        if r.get("ms-ssim-rgb") and t.get("ms-ssim-rgb"):
            to_db = lambda values: [None if v is None or v >= 1 else -10 * math.log10(1 - v) for v in values]  # noqa: E731
            ra, qa = _clip_to_range(r["bpp"], to_db(r["ms-ssim-rgb"]), bpp_range)
            rt, qt = _clip_to_range(t["bpp"], to_db(t["ms-ssim-rgb"]), bpp_range)
            row["bd_rate_msssim"] = bd_rate(ra, qa, rt, qt)
        rows.append(row)
    return rows


def agreement_table(curves: dict[str, dict[str, Any]], anchors: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """BD-rate (PSNR) of each measured codec against an anchor file named ``measured-<codec>``.

    Values near zero show that this machine's measurement agrees with the earlier one.
    """
    rows = []
    for data in curves.values():
        anchor = anchors.get(f"measured-{data['name']}")
        if anchor is None:
            continue
        r, a = data["results"], anchor["results"]
        rows.append({"codec": data["name"], "bd_rate_psnr": bd_rate(a["bpp"], a["psnr-rgb"], r["bpp"], r["psnr-rgb"])})
    return rows


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.1f}%"


def table_markdown(test_name: str, rows: list[dict[str, Any]], bpp_range) -> str:
    """The BD table as Markdown."""
    span = f" over {bpp_range[0]}-{bpp_range[1]} bpp" if bpp_range else ""
    lines = [
        f"BD-rate of **{test_name}** against each anchor{span} (negative: {test_name} needs fewer bits; "
        "PCHIP fit of log-rate over the shared quality interval)",
        "",
        "| anchor | BD-rate (PSNR) | BD-rate (MS-SSIM dB) |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {r['anchor']} | {_fmt(r['bd_rate_psnr'])} | {_fmt(r['bd_rate_msssim'])} |" for r in rows]
    return "\n".join(lines) + "\n"


def rd_plot(curves: dict[str, dict[str, Any]], measured: set[str], path: Path, bpp_max: float = 2.0) -> None:
    """PSNR and MS-SSIM (dB) against bpp; measured curves solid, anchors dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for name, data in curves.items():
        r = data["results"]
        style = dict(marker="o", markersize=3, linewidth=2.2 if name == DCAE_KEY else 1.3)
        if name not in measured:
            style.update(linestyle="--", marker=None, linewidth=1.0)
        pts = sorted((b, p) for b, p in zip(r["bpp"], r["psnr-rgb"]) if b is not None and b <= bpp_max)
        if pts:
            axes[0].plot(*zip(*pts), label=data.get("name", name), **style)
        if r.get("ms-ssim-rgb"):
            pts = sorted(
                (b, -10 * math.log10(1 - s))
                for b, s in zip(r["bpp"], r["ms-ssim-rgb"])
                if b is not None and s is not None and s < 1 and b <= bpp_max
            )
            if pts:
                axes[1].plot(*zip(*pts), label=data.get("name", name), **style)
    for ax, label in zip(axes, ["PSNR (RGB) [dB]", "MS-SSIM (RGB) [dB]"]):
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")  # the path may be a temporary name
    plt.close(fig)


def _png_base64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def matched_crops(
    image_path: Path,
    results: dict[str, CodecResult],
    model: "str | None",
    crop: int = 256,
    optimize_steps: int = 0,
) -> list[dict[str, Any]]:
    """One image from each of dcae (coded as the run coded it, with ``optimize_steps``), JPEG,
    WebP and AVIF at the quality nearest dcae's middle bpp."""
    name = image_path.name
    if DCAE_KEY not in results or name not in results[DCAE_KEY].per_image:
        return []
    ours = results[DCAE_KEY].per_image[name]
    target = ours[len(ours) // 2]["bpp"]
    reference, _ = load_image(image_path)
    height, width = reference.shape[:2]
    top, left = max(0, (height - crop) // 2), max(0, (width - crop) // 2)
    window = (slice(top, top + crop), slice(left, left + crop))
    tiles = [{"label": "original", "png": _png_base64(reference[window]), "bpp": None, "psnr": None}]
    for key in [DCAE_KEY, "jpeg", "webp", "avif"]:
        if key not in results or name not in results[key].per_image:
            continue
        rows = results[key].per_image[name]
        best = min(rows, key=lambda row: abs(row["bpp"] - target))
        decoded = _decode_at(key, reference, best["quality"], model, optimize_steps)
        tiles.append(
            {
                "label": results[key].name,
                "png": _png_base64(decoded[window]),
                "bpp": best["bpp"],
                "psnr": psnr(reference, decoded),
            }
        )
    return tiles


def _decode_at(key: str, reference: np.ndarray, quality, model: "str | None", optimize_steps: int) -> np.ndarray:
    if key == DCAE_KEY:
        codec = CodecCache().get(model, optimize_steps=optimize_steps)
        return codec.decompress(codec.compress(reference, quality=quality)).pixels
    classic = CLASSIC_CODECS[key]
    return classic.decode(classic.encode(reference, quality))


# The files every report writes (besides one <codec>.json per codec).
REPORT_FILES = ("bd_table.md", "bd_table.json", "rd.png", "report.html")


def write_report(
    out: Path,
    results: dict[str, CodecResult],
    anchors: dict[str, dict[str, Any]],
    dataset: Path,
    model: "str | None",
    bpp_range: "tuple[float, float] | None" = None,
    optimize_steps: int = 0,
    force: bool = False,
) -> dict[str, Path]:
    """Write ``<codec>.json``, ``bd_table.md``/``.json``, ``rd.png`` and ``report.html`` into ``out``
    (``optimize_steps``: the dcae setting of the run, for the report's matched-rate crops). Each
    file is written whole or not at all; an existing one is replaced only with ``force``."""
    out.mkdir(parents=True, exist_ok=True)

    def write_text(path: Path, text: str) -> None:
        write_output(path, lambda tmp: Path(tmp).write_text(text), force)

    written: dict[str, Path] = {}
    curves: dict[str, dict[str, Any]] = {}
    for key, result in results.items():
        data = result.to_json()
        path = out / f"{result.name}.json"
        write_text(path, json.dumps(data, indent=2, allow_nan=False, default=_json_default))
        written[key] = path
        curves[key] = data
    test_key = DCAE_KEY if DCAE_KEY in curves else next(iter(curves))
    references = {results[k].name: curves[k] for k in curves if k != test_key}
    references.update({f"{name} (anchor)": data for name, data in anchors.items()})
    rows = bd_table(curves[test_key], references, bpp_range)
    markdown = table_markdown(results[test_key].name, rows, bpp_range)
    agreement = agreement_table(curves, anchors)
    if agreement:
        markdown += "\nAgreement of this run's classic codecs with the earlier measurements (BD-rate, PSNR):\n\n"
        markdown += "| codec | vs measured-<codec> |\n| --- | --- |\n"
        markdown += "".join(f"| {a['codec']} | {_fmt(a['bd_rate_psnr'])} |\n" for a in agreement)
    write_text(out / "bd_table.md", markdown)
    write_text(out / "bd_table.json", json.dumps(rows, indent=2, default=_json_default))
    all_curves = dict(curves)
    all_curves.update({f"anchor:{k}": {**v, "name": f"{v.get('name', k)} (anchor)"} for k, v in anchors.items()})
    write_output(out / "rd.png", lambda tmp: rd_plot(all_curves, set(curves), Path(tmp)), force)
    images = sorted(results[test_key].per_image)
    tiles = matched_crops(dataset / images[0], results, model, optimize_steps=optimize_steps) if images else []
    write_text(out / "report.html", _html(results, rows, agreement, out / "rd.png", tiles, dataset, bpp_range))
    written.update(table=out / "bd_table.md", plot=out / "rd.png", report=out / "report.html")
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _html(results, rows, agreement, plot: Path, tiles, dataset: Path, bpp_range) -> str:
    esc = html.escape
    span = f" over {bpp_range[0]}-{bpp_range[1]} bpp" if bpp_range else ""
    table = "".join(
        f"<tr><td>{esc(r['anchor'])}</td><td>{_fmt(r['bd_rate_psnr'])}</td><td>{_fmt(r['bd_rate_msssim'])}</td></tr>"
        for r in rows
    )
    measured = "".join(
        f"<li><b>{esc(r.name)}</b>: {esc(r.description)}; {len(r.per_image)} images, qualities "
        f"{esc(str(r.qualities))}</li>"
        for r in results.values()
    )
    figures = "".join(
        f"<figure><img src='data:image/png;base64,{t['png']}'><figcaption>{esc(t['label'])}"
        + (f"<br>{t['bpp']:.3f} bpp, {t['psnr']:.2f} dB" if t["bpp"] is not None else "")
        + "</figcaption></figure>"
        for t in tiles
    )
    plot_b64 = base64.b64encode(plot.read_bytes()).decode("ascii")
    consistency = ""
    if agreement:
        cells = "".join(f"<tr><td>{esc(a['codec'])}</td><td>{_fmt(a['bd_rate_psnr'])}</td></tr>" for a in agreement)
        consistency = (
            "<h2>Agreement with earlier measurements</h2><p>BD-rate (PSNR) of each classic codec measured here "
            "against the anchor file <code>measured-&lt;codec&gt;</code>; near zero means agreement.</p>"
            f"<table><tr><th>codec</th><th>BD-rate</th></tr>{cells}</table>"
        )
    # BD-rate with NaN values are printed "n/a"; JSON files hold null for them.
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>dcae evaluation: {esc(dataset.name)}</title>
<style>body{{font-family:sans-serif;max-width:1300px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:6px;text-align:center}}img{{max-width:100%}}</style></head>
<body><h1>dcae evaluation on {esc(str(dataset))}</h1>
<h2>Codecs measured</h2><ul>{measured}</ul>
<h2>BD-rate of {esc(next(iter(results.values())).name if results else "")} against each curve{span}</h2>
<p>Negative values: fewer bits for the same quality. Bjontegaard delta with a PCHIP fit of log-rate against
quality, over the quality interval both curves cover; MS-SSIM in dB (-10 log10(1-MS-SSIM)).</p>
<table><tr><th>anchor</th><th>BD-rate (PSNR)</th><th>BD-rate (MS-SSIM dB)</th></tr>{table}</table>
{consistency}
<h2>Rate-distortion curves</h2><img src="data:image/png;base64,{plot_b64}">
<h2>Matched-rate crops</h2><p>Centre crops of one image, each codec at the quality whose rate is nearest
dcae's middle rate point.</p>{figures}
</body></html>
"""
