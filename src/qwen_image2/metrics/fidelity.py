"""Image fidelity metrics on uint8 tensors: PSNR, SSIM, LPIPS and the Fréchet distance of rFID.

Every metric here takes uint8 tensors (N, C, H, W) so that the data range cannot be wrong; the protocol
they are read under (crop, fp32, rounding) is `evaluation/reconstruction.py`'s.
"""

import warnings
from pathlib import Path

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from qwen_image2.errors import UserError

# Wang et al. 2004 constants, as torchmetrics and scikit-image use them.
SSIM_K1, SSIM_K2, SSIM_SIGMA = 0.01, 0.03, 1.5
# Gaussian window taps: int(3.5 sigma + 0.5) * 2 + 1 at sigma 1.5.
SSIM_WINDOW = 11
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

    torchmetrics' PSNR over dim=(1, 2, 3) with reduction="none". Average this over images; never compute
    PSNR of the MSE pooled over a batch (torchmetrics' default without `dim`).
    """
    _check_pair(reference, reconstruction)
    return peak_signal_noise_ratio(
        reconstruction.double(), reference.double(), data_range=255.0, dim=(1, 2, 3), reduction="none"
    )


def ssim(reference: torch.Tensor, reconstruction: torch.Tensor, border: str = "reflect") -> torch.Tensor:
    """Per-image SSIM: uint8 (N, C, H, W) pairs -> (N,) float64, mean over channels and positions.

    torchmetrics' SSIM: 11-tap Gaussian window, sigma 1.5, data range 255, population covariance, each
    channel alone. border="reflect" reflect-pads and averages the full map (torchmetrics, DC-AE's
    evaluator); border="crop" averages only where the window fits, i.e. drops 5 pixels of torchmetrics'
    full SSIM map on each side (scikit-image with gaussian_weights=True, use_sample_covariance=False).
    """
    _check_pair(reference, reconstruction)
    if border not in ("reflect", "crop"):
        raise ValueError(f"border must be 'reflect' or 'crop', got {border!r}")
    kwargs = dict(
        gaussian_kernel=True,
        sigma=SSIM_SIGMA,
        kernel_size=SSIM_WINDOW,
        data_range=255.0,
        k1=SSIM_K1,
        k2=SSIM_K2,
        reduction="none",
    )
    x, y = reconstruction.double(), reference.double()
    if border == "reflect":
        return structural_similarity_index_measure(x, y, **kwargs)
    _, index = structural_similarity_index_measure(x, y, return_full_image=True, **kwargs)
    pad = SSIM_WINDOW // 2
    return index[..., pad:-pad, pad:-pad].flatten(1).mean(dim=1)


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


class FidFeatures(torch.nn.Module):
    """pytorch-fid's InceptionV3 as uint8 (N, 3, H, W) -> (N, 2048) float64 pool features (resized to 299)."""

    num_features = 2048  # torchmetrics' FrechetInceptionDistance reads this instead of running a dummy image

    def __init__(self, inception: torch.nn.Module):
        super().__init__()
        self.inception = inception.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.inception.parameters()).device
        return self.inception(images.to(device).float() / 255)[0].flatten(1).double().cpu()


def build_fid_features(weights: Path | None = None) -> FidFeatures:
    """pytorch-fid's InceptionV3 (2048-d pool features, bilinear resize to 299) as uint8 batch -> features.

    Needs the FID Inception weights (pt_inception-2015-12-05-6726825d.pth) in torch's hub cache or at
    `weights` (copied into the cache, where pytorch-fid looks); offline, a missing file is a UserError.
    """
    from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(FID_WEIGHTS_URL).name
    path = weights or cached
    if not Path(path).is_file():
        raise UserError(f"rFID needs the FID Inception weights: download {FID_WEIGHTS_URL} to {cached}")
    if Path(path) != cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(Path(path).read_bytes())
    return FidFeatures(InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]))


def fid_metric(features: torch.nn.Module):
    """torchmetrics' FrechetInceptionDistance on `features` (uint8 batch -> (N, D)): update(images, real=...),
    then compute() gives the FID of the two sets (float64 when the features are)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=features)
