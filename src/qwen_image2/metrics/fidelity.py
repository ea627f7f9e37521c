"""Image fidelity metrics on uint8 tensors: PSNR, SSIM, LPIPS and the Fréchet distance of rFID.

Every metric here takes uint8 tensors (N, C, H, W) so that the data range cannot be wrong; the protocol
they are read under (crop, fp32, rounding) is `evaluation/reconstruction.py`'s.
"""

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from qwen_image2.errors import UserError

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
