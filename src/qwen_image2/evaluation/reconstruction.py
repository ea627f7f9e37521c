"""VAE reconstruction metrics (PSNR, SSIM, LPIPS, rFID) and the evaluation protocol they are read under.

Protocol (reference/vae_eval_perf.md §4, the DC-AE / VA-VAE / OmniDoc evaluators): resize and center-crop
each image once (ADM crop), run the VAE in fp32 on the posterior mode, clamp and round the reconstruction to
uint8, then compare uint8 against uint8. PSNR is per image with peak 255 and then averaged (not the PSNR
of the pooled MSE); SSIM uses an 11-tap Gaussian window (sigma 1.5) per RGB channel with data range 255.
The metrics themselves are `metrics/fidelity.py`'s.
"""

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qwen_image2.data.images import IMAGE_ERRORS, list_images, open_image
from qwen_image2.errors import UserError
from qwen_image2.metrics.fidelity import fid_metric, lpips_distance, psnr, ssim, to_uint8, to_unit

# -------------------------------------------------------------------------------------------- protocol


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """ADM's center crop: halve with BOX while large, BICUBIC to short side `size`, crop the middle square."""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.Resampling.BOX)
    scale = size / min(image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=Image.Resampling.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def read_uint8(path: Path, size: int | None = None, mode: str = "RGB") -> torch.Tensor:
    """An image file -> uint8 (C, H, W), optionally center-cropped to size²; OSError-family if unreadable."""
    image = open_image(path, mode)
    if size is not None:
        image = center_crop(image, size)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def read_or_skip(path: Path, skipped: list[dict], size: int | None = None, mode: str = "RGB"):
    """`read_uint8`, or None with a {name, reason} row appended to `skipped` when the file is unreadable."""
    try:
        return read_uint8(path, size, mode)
    except IMAGE_ERRORS as err:
        skipped.append({"name": path.name, "reason": f"unreadable ({err.__class__.__name__})"})
        return None


def score_batch(
    reference: torch.Tensor, reconstruction: torch.Tensor, lpips_model=None
) -> dict[str, torch.Tensor]:
    """Every per-image metric of uint8 RGB (N, 3, H, W) pairs: psnr, ssim, ssim_crop (and lpips)."""
    scores = {
        "psnr": psnr(reference, reconstruction),
        "ssim": ssim(reference, reconstruction),
        "ssim_crop": ssim(reference, reconstruction, border="crop"),
    }
    if lpips_model is not None:
        scores["lpips"] = lpips_distance(lpips_model, reference, reconstruction)
    return scores


def summarize(rows: list[dict], skipped: list[dict], fid: float | None = None) -> dict:
    """Averages over the scored images, with counts; a PSNR of inf (identical pair) is counted, not averaged."""
    if not rows:
        reasons = "; ".join(f"{s['name']}: {s['reason']}" for s in skipped[:5])
        raise UserError(f"no image could be scored ({len(skipped)} skipped: {reasons})")
    result: dict = {"images": len(rows), "skipped": len(skipped)}
    psnrs = [r["psnr"] for r in rows if math.isfinite(r["psnr"])]
    result["identical_images"] = len(rows) - len(psnrs)
    result["psnr"] = float(np.mean(psnrs)) if psnrs else None
    for key in ("ssim", "ssim_crop", "lpips"):
        if key in rows[0]:
            result[key] = float(np.mean([r[key] for r in rows]))
    if fid is not None:
        result["rfid"] = fid
    # JSON has no inf: an identical pair's PSNR is written as null.
    result["per_image"] = [dict(r, psnr=r["psnr"] if math.isfinite(r["psnr"]) else None) for r in rows]
    result["skipped_images"] = skipped
    return result


def _rows(names: Iterable[str], scores: dict[str, torch.Tensor]) -> list[dict]:
    return [{"name": name, **{k: float(v[i]) for k, v in scores.items()}} for i, name in enumerate(names)]


@torch.no_grad()
def reconstruct(vae, reference: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (N, 3, H, W) -> uint8 RGB reconstruction: fp32, posterior mode, clamped and rounded.

    A 4-channel (RGBA) VAE gets an opaque alpha channel; its RGB output is scored.
    """
    parameter = next(vae.parameters())
    pixels = to_unit(reference)
    if vae.config.in_channels == 4:
        pixels = torch.cat([pixels, torch.ones_like(pixels[:, :1])], dim=1)
    latents = vae.encode(pixels.to(parameter.device, parameter.dtype).unsqueeze(2)).latent_dist.mode()
    decoded = vae.decode(latents, return_dict=False)[0][:, :3, 0]
    return to_uint8(decoded.float().cpu())


def evaluate_vae(
    vae,
    paths: list[Path],
    size: int = 256,
    batch_size: int = 8,
    lpips_model=None,
    fid_features: torch.nn.Module | None = None,
    keep: int = 0,
) -> tuple[dict, list[tuple[str, torch.Tensor, torch.Tensor]]]:
    """Reconstruct `paths` at size² and score them: (summary dict, the `keep` worst (name, ref, rec) by PSNR).

    `fid_features` (uint8 batch -> (N, D) features, e.g. `build_fid_features()`) adds rFID: torchmetrics'
    Fréchet distance between the features of the references and of the reconstructions.
    """
    rows, skipped, worst = [], [], []
    fid = fid_metric(fid_features) if fid_features is not None else None
    for start in range(0, len(paths), batch_size):
        names, images = [], []
        for path in paths[start : start + batch_size]:
            image = read_or_skip(path, skipped, size)
            if image is not None:
                names.append(path.name)
                images.append(image)
        if not images:
            continue
        reference = torch.stack(images)
        reconstruction = reconstruct(vae, reference)
        batch_rows = _rows(names, score_batch(reference, reconstruction, lpips_model))
        rows += batch_rows
        if fid is not None:
            fid.update(reference, real=True)
            fid.update(reconstruction, real=False)
        if keep:  # only the `keep` worst stay in memory
            worst += [
                (r["psnr"], r["name"], reference[i], reconstruction[i]) for i, r in enumerate(batch_rows)
            ]
            worst = sorted(worst, key=lambda item: item[0])[:keep]
    rfid = None
    if fid is not None and rows:
        if len(rows) < 2:
            raise UserError(f"rFID needs at least 2 scored images, got {len(rows)}")
        rfid = float(fid.compute())
    return summarize(rows, skipped, rfid), [item[1:] for item in worst]


def evaluate_pairs(reference_dir: Path, prediction_dir: Path, lpips_model=None, keep: int = 0):
    """Score two folders of images matched by file stem: (summary dict, the `keep` worst pairs).

    A missing counterpart, an unreadable file or mismatched sizes is a counted skip with its reason.
    """
    references = {p.stem: p for p in list_images(reference_dir)}
    predictions = {p.stem: p for p in list_images(prediction_dir)}
    rows, skipped, pairs = [], [], []
    for stem in sorted(references.keys() | predictions.keys()):
        if stem not in references or stem not in predictions:
            side = reference_dir if stem not in references else prediction_dir
            skipped.append({"name": stem, "reason": f"no counterpart in {side}"})
            continue
        reference = read_or_skip(references[stem], skipped)
        prediction = read_or_skip(predictions[stem], skipped)
        if reference is None or prediction is None:
            continue
        if reference.shape != prediction.shape:
            size_of = lambda t: f"{t.shape[2]}x{t.shape[1]}"  # noqa: E731
            skipped.append({"name": stem, "reason": f"size {size_of(reference)} vs {size_of(prediction)}"})
            continue
        scores = score_batch(reference[None], prediction[None], lpips_model)
        rows += _rows([references[stem].name], scores)
        pairs.append((float(scores["psnr"][0]), references[stem].name, stem))
    summary = summarize(rows, skipped)
    worst = sorted(pairs)[:keep]  # re-read the few worst rather than hold every image
    return summary, [(name, read_uint8(references[s]), read_uint8(predictions[s])) for _, name, s in worst]
