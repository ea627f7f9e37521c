"""VAE reconstruction metrics (PSNR, SSIM, LPIPS, rFID) and the evaluation protocol they are read under.

Protocol (reference/vae_eval_perf.md §4, the DC-AE / VA-VAE / OmniDoc evaluators): resize and center-crop
each image once (ADM crop), run the VAE in fp32 on the posterior mode, clamp and round the reconstruction to
uint8, then compare uint8 against uint8. PSNR is per image with peak 255 and then averaged (not the PSNR
of the pooled MSE); SSIM uses an 11-tap Gaussian window (sigma 1.5) per RGB channel with data range 255.
Every metric here takes uint8 tensors (N, 3, H, W) so that the data range cannot be wrong.
"""

import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from qwen_image2.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
# Wang et al. 2004 constants, as torchmetrics and scikit-image use them.
SSIM_K1, SSIM_K2, SSIM_SIGMA = 0.01, 0.03, 1.5
# torchvision's ImageNet backbones for LPIPS, as lpips v0.1 uses them (file names of torchvision's hub URLs).
LPIPS_BACKBONES = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
}


# ---------------------------------------------------------------------------------------------- pixels


def to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """Floats in [-1, 1] (N, C, H, W) -> uint8, clamped and rounded half up as DC-AE's evaluator does."""
    return ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [-1, 1]."""
    return pixels.float() / 127.5 - 1


def _check_pair(reference: torch.Tensor, reconstruction: torch.Tensor) -> None:
    if reference.dtype != torch.uint8 or reconstruction.dtype != torch.uint8:
        raise TypeError("metrics take uint8 images; convert floats with to_uint8 so the data range is 255")
    if reference.shape != reconstruction.shape or reference.ndim != 4:
        raise ValueError(
            f"shapes differ or are not (N, C, H, W): {tuple(reference.shape)} vs {tuple(reconstruction.shape)}"
        )


# --------------------------------------------------------------------------------------------- metrics


def psnr(reference: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB with peak 255: uint8 (N, C, H, W) pairs -> (N,) float64; inf where identical.

    Average this over images; never compute PSNR of the MSE pooled over a batch (torchmetrics' default).
    """
    _check_pair(reference, reconstruction)
    error = (reference.double() - reconstruction.double()).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(255.0**2 / error)


def gaussian_window(size: int = 11, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 2-D Gaussian (size, size), float64; size 11 = int(3.5 sigma + 0.5) * 2 + 1 at sigma 1.5."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    line = torch.exp(-((offsets / sigma) ** 2) / 2)
    line = line / line.sum()
    return line[:, None] * line[None, :]


def ssim(reference: torch.Tensor, reconstruction: torch.Tensor, border: str = "reflect") -> torch.Tensor:
    """Per-image SSIM: uint8 (N, C, H, W) pairs -> (N,) float64, mean over channels and positions.

    11-tap Gaussian window, sigma 1.5, data range 255, population covariance, each channel alone.
    border="reflect" reflect-pads and averages the full map (torchmetrics, DC-AE's evaluator);
    border="crop" averages only where the window fits, i.e. crops 5 pixels (scikit-image with
    gaussian_weights=True, use_sample_covariance=False).
    """
    _check_pair(reference, reconstruction)
    if border not in ("reflect", "crop"):
        raise ValueError(f"border must be 'reflect' or 'crop', got {border!r}")
    window = gaussian_window()
    pad = window.shape[0] // 2
    x, y = reference.double(), reconstruction.double()
    if border == "reflect":
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    channels = x.shape[1]
    kernel = window.expand(channels, 1, *window.shape)
    moments = F.conv2d(torch.cat([x, y, x * x, y * y, x * y]), kernel, groups=channels)
    mu_x, mu_y, xx, yy, xy = moments.split(x.shape[0])
    var_x = (xx - mu_x**2).clamp(min=0)
    var_y = (yy - mu_y**2).clamp(min=0)
    cov = xy - mu_x * mu_y
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return index.flatten(1).mean(dim=1)


def build_lpips(net: str = "alex", backbone: Path | None = None, random_backbone: bool = False):
    """LPIPS v0.1 (frozen, eval): the linear heads the `lpips` package ships plus a torchvision backbone.

    The backbone's ImageNet weights come from `backbone`, else from torch's hub cache, where torchvision
    would download them; offline, a missing file is a UserError that says where to put it.
    `random_backbone=True` keeps random backbone weights (tests only: the numbers mean nothing).
    """
    import lpips
    import torchvision

    if net not in LPIPS_BACKBONES:
        raise UserError(f"LPIPS net {net!r}: choose one of {', '.join(LPIPS_BACKBONES)}")
    path = backbone or Path(torch.hub.get_dir()) / "checkpoints" / Path(LPIPS_BACKBONES[net]).name
    if not random_backbone and not Path(path).is_file():
        raise UserError(
            f"LPIPS-{net} needs the torchvision ImageNet backbone {Path(path).name}: download "
            f"{LPIPS_BACKBONES[net]} to {path} (or pass its path)"
        )
    with warnings.catch_warnings():  # lpips still calls torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    if not random_backbone:
        features = (torchvision.models.alexnet() if net == "alex" else torchvision.models.vgg16()).features
        features.load_state_dict(_features_state(torch.load(path, map_location="cpu", weights_only=True)))
        for part in model.net.children():  # lpips slices keep torchvision's layer indices as names
            for name, layer in part.named_children():
                layer.load_state_dict(features[int(name)].state_dict())
    model.eval().requires_grad_(False)
    return model


def _features_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {
        key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")
    }


@torch.no_grad()
def lpips_distance(model, reference: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS: uint8 (N, 3, H, W) pairs -> (N,) float64 (model inputs mapped to [-1, 1])."""
    _check_pair(reference, reconstruction)
    device = next(model.parameters()).device
    distance = model(to_unit(reference).to(device), to_unit(reconstruction).to(device))
    return distance.flatten().double().cpu()


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets (N, D) (pytorch-fid's formula: Gaussian fit, matrix square root)."""
    from scipy import linalg

    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    sigma_a, sigma_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    covmean = linalg.sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(covmean).all():  # near-singular product: pytorch-fid's eps offset
        offset = np.eye(sigma_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean))


def build_fid_features(weights: Path | None = None) -> Callable[[torch.Tensor], np.ndarray]:
    """pytorch-fid's InceptionV3 (2048-d pool features, bilinear resize to 299) as uint8 batch -> features.

    Needs the FID Inception weights (pt_inception-2015-12-05-6726825d.pth) in torch's hub cache or at
    `weights`; offline, a missing file is a UserError.
    """
    try:
        from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3
    except ImportError:
        raise UserError("rFID needs the pytorch-fid package: pip install pytorch-fid") from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(FID_WEIGHTS_URL).name
    path = weights or cached
    if not Path(path).is_file():
        raise UserError(f"rFID needs the FID Inception weights: download {FID_WEIGHTS_URL} to {cached}")
    if path != cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(Path(path).read_bytes())
    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()

    @torch.no_grad()
    def features(images: torch.Tensor) -> np.ndarray:
        return model(images.float() / 255)[0].flatten(1).double().numpy()

    return features


# -------------------------------------------------------------------------------------------- protocol


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name; a UserError if there are none."""
    if not Path(folder).is_dir():
        raise UserError(f"{folder} is not a folder")
    paths = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


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
    with Image.open(path) as image:
        image = image.convert(mode)
    if size is not None:
        image = center_crop(image, size)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def read_or_skip(path: Path, skipped: list[dict], size: int | None = None, mode: str = "RGB"):
    """`read_uint8`, or None with a {name, reason} row appended to `skipped` when the file is unreadable."""
    try:
        return read_uint8(path, size, mode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
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
    fid_features: Callable[[torch.Tensor], np.ndarray] | None = None,
    keep: int = 0,
) -> tuple[dict, list[tuple[str, torch.Tensor, torch.Tensor]]]:
    """Reconstruct `paths` at size² and score them: (summary dict, the `keep` worst (name, ref, rec) by PSNR)."""
    rows, skipped, worst = [], [], []
    features_ref, features_rec = [], []
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
        if fid_features is not None:
            features_ref.append(fid_features(reference))
            features_rec.append(fid_features(reconstruction))
        if keep:  # only the `keep` worst stay in memory
            worst += [
                (r["psnr"], r["name"], reference[i], reconstruction[i]) for i, r in enumerate(batch_rows)
            ]
            worst = sorted(worst, key=lambda item: item[0])[:keep]
    fid = (
        frechet_distance(np.concatenate(features_ref), np.concatenate(features_rec)) if features_ref else None
    )
    return summarize(rows, skipped, fid), [item[1:] for item in worst]


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
