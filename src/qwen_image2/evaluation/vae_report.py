"""What a reconstruction evaluation leaves for a person: a PNG of the worst reconstructions, and a table
that places the result beside the published anchors."""

import json
from pathlib import Path

from qwen_image2.metrics.grid import comparison_grid

# Qwen-Image-2.0 report Table 1 (arXiv 2605.10730; reference/vae_eval_perf.md §3.1): 256x256,
# (setting, ImageNet PSNR, ImageNet SSIM, in-house Text PSNR, Text SSIM).
TABLE1 = {
    "SD-3.5": ("f8c16", 31.22, 0.8839, 29.93, 0.9658),
    "Cosmos-CI8x8": ("f8c16", 32.23, 0.9010, 30.62, 0.9664),
    "Wan2.1": ("f8c16", 31.29, 0.8870, 26.77, 0.9386),
    "HunyuanVideo": ("f8c16", 33.21, 0.9143, 32.83, 0.9773),
    "FLUX.1-dev": ("f8c16", 32.84, 0.9155, 32.65, 0.9792),
    "Qwen-Image (v1)": ("f8c16", 33.42, 0.9159, 36.63, 0.9839),
    "HunyuanImage-3.0": ("f16c32", 31.08, 0.8655, 29.23, 0.9521),
    "Wan2.2": ("f16c48", 31.30, 0.8784, 28.19, 0.9508),
    "Stepvideo-T2V": ("f16c64", 31.54, 0.8973, 29.62, 0.9641),
    "Qwen-Image-2.0": ("f16c64", 33.42, 0.9225, 32.81, 0.9795),
}
# Qwen-Image-VAE-2.0 report Table 2 = OmniDoc-TokenBench README (§3.3): (setting, PSNR, SSIM, LPIPS-vgg).
OMNIDOC = {
    "Wan2.1": ("f8c16", 20.54, 0.8282, 0.0679),
    "Qwen-Image": ("f8c16", 24.94, 0.8998, 0.0519),
    "HunyuanVideo": ("f8c16", 25.26, 0.9227, 0.0434),
    "FLUX.1-dev": ("f8c16", 26.24, 0.9364, 0.0246),
    "Wan2.2": ("f16c48", 21.67, 0.8577, 0.0525),
    "Stepvideo-T2V": ("f16c64", 23.69, 0.8970, 0.0650),
    "Qwen-Image-VAE-2.0": ("f16c64", 26.00, 0.9279, 0.0382),
    "FLUX.2-dev": ("f16c128", 27.72, 0.9544, 0.0216),
}
BENCHMARKS = ("imagenet", "text", "omnidoc")


def anchor_table(result: dict, name: str, setting: str, benchmark: str = "text") -> str:
    """Markdown: the anchors of `benchmark`'s published table with this result as the last row.

    The numbers are comparable only when the data is that benchmark's (ImageNet-1k val, the report's
    unreleased text set, OmniDoc-TokenBench) under the same protocol; the table says which it is.
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")
    psnr = "—" if result.get("psnr") is None else f"{result['psnr']:.2f}"
    ssim = f"{result['ssim']:.4f}"
    lines = []
    if benchmark == "omnidoc":
        lines += ["| VAE | setting | PSNR | SSIM | LPIPS |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v[0]} | {v[1]:.2f} | {v[2]:.4f} | {v[3]:.4f} |" for k, v in OMNIDOC.items()]
        lpips = f"{result['lpips']:.4f}" if "lpips" in result else "—"
        lines.append(f"| **{name}** | {setting} | **{psnr}** | **{ssim}** | {lpips} |")
        source = "OmniDoc-TokenBench (Qwen-Image-VAE-2.0 report, Table 2), 256x256"
    else:
        lines += [
            "| VAE | setting | ImageNet PSNR | ImageNet SSIM | Text PSNR | Text SSIM |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {k} | {v[0]} | {v[1]:.2f} | {v[2]:.4f} | {v[3]:.2f} | {v[4]:.4f} |" for k, v in TABLE1.items()
        ]
        cells = [f"**{psnr}**", f"**{ssim}**", "—", "—"]
        if benchmark == "text":
            cells = cells[2:] + cells[:2]
        lines.append(f"| **{name}** | {setting} | " + " | ".join(cells) + " |")
        source = "Qwen-Image-2.0 report Table 1, 256x256"
    note = (
        f"Anchors: {source}. This run: {result['images']} images ({result['skipped']} skipped), "
        "per-image PSNR (peak 255) averaged; SSIM Gaussian 11/σ1.5 per RGB channel, range 255."
    )
    return "\n".join(lines) + "\n\n" + note + "\n"


def save_report(result: dict, worst: list, out: Path, name: str, setting: str, benchmark: str) -> dict:
    """Write FILE.json, FILE.worst.png and FILE.md (the anchor table); return the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"json": out, "worst": out.with_suffix(".worst.png"), "table": out.with_suffix(".md")}
    result = dict(result, report={k: str(v) for k, v in paths.items()})
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    comparison_grid(worst).save(paths["worst"])
    paths["table"].write_text(anchor_table(result, name, setting, benchmark))
    return paths
