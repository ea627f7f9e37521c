"""Metric functions against scikit-image and torchmetrics, and the pitfalls of vae_eval_perf.md §4."""

import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from qwen_image2.errors import UserError
from qwen_image2.evaluation.reconstruction import evaluate_vae, summarize
from qwen_image2.metrics.fidelity import (
    build_fid_features,
    build_lpips,
    fid_metric,
    lpips_distance,
    psnr,
    ssim,
    to_uint8,
    to_unit,
)


@pytest.fixture(scope="module")
def pair():
    """Four 3x48x40 'images' (smooth structure plus texture) and reconstructions with unequal error levels."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:40]
    base = 128 + 80 * np.sin(xx[None, None] / 5 + rng.uniform(0, 6, (4, 3, 1, 1))) * np.cos(yy / 7)
    reference = np.clip(base + rng.normal(0, 20, (4, 3, 48, 40)), 0, 255).astype(np.uint8)
    noise = rng.normal(0, 1, reference.shape) * np.array([2, 6, 15, 30])[:, None, None, None]
    reconstruction = np.clip(reference + noise, 0, 255).astype(np.uint8)
    return torch.from_numpy(reference), torch.from_numpy(reconstruction)


def test_psnr_matches_skimage_per_image(pair):
    reference, reconstruction = pair
    ours = psnr(reference, reconstruction)
    for i in range(len(reference)):
        expected = peak_signal_noise_ratio(reference[i].numpy(), reconstruction[i].numpy(), data_range=255)
        assert ours[i].item() == pytest.approx(expected, abs=0.01)


def test_psnr_matches_torchmetrics_per_image_dims(pair):
    reference, reconstruction = pair
    expected = tm_psnr(
        reconstruction.float(), reference.float(), data_range=255.0, dim=(1, 2, 3), reduction="none"
    )
    assert torch.allclose(psnr(reference, reconstruction).float(), expected, atol=0.01)


def test_pooled_psnr_is_not_the_mean_of_per_image_psnr(pair):
    """torchmetrics' default pools the MSE over the batch; the protocol averages per-image PSNR."""
    reference, reconstruction = pair
    pooled = tm_psnr(reconstruction.float(), reference.float(), data_range=255.0).item()
    per_image = psnr(reference, reconstruction)
    rows = [
        {"name": str(i), "psnr": float(v), "ssim": 0.0, "ssim_crop": 0.0} for i, v in enumerate(per_image)
    ]
    averaged = summarize(rows, [])["psnr"]
    assert averaged == pytest.approx(per_image.mean().item())
    assert abs(averaged - pooled) > 1.0  # unequal error levels make the two differ by dB, not rounding


def test_data_range_of_minus_one_to_one_counted_as_one_moves_psnr_by_6_02_db(pair):
    """Images in [-1, 1] scored with data_range 1 lose 20 log10 2 dB (the reference note says 'inflates';
    the sign is the other way: the true range is 2)."""
    reference, reconstruction = pair
    right = psnr(reference, reconstruction)
    unit_ref, unit_rec = to_unit(reference), to_unit(reconstruction)
    wrong = tm_psnr(unit_rec, unit_ref, data_range=1.0, dim=(1, 2, 3), reduction="none")
    assert torch.allclose(right - wrong.double(), torch.full_like(right, 20 * math.log10(2)), atol=1e-3)
    with pytest.raises(TypeError, match="uint8"):  # ours only accepts uint8, so the range cannot be wrong
        psnr(unit_ref, unit_rec)


def test_ssim_matches_torchmetrics_reflect_border(pair):
    reference, reconstruction = pair
    expected = tm_ssim(
        reconstruction.double(),
        reference.double(),
        gaussian_kernel=True,
        sigma=1.5,
        kernel_size=11,
        data_range=255.0,
        reduction="none",
    )
    assert torch.allclose(ssim(reference, reconstruction), expected, atol=1e-3)


def test_ssim_crop_matches_skimage_gaussian_wang_settings(pair):
    reference, reconstruction = pair
    ours = ssim(reference, reconstruction, border="crop")
    for i in range(len(reference)):
        expected = structural_similarity(
            reference[i].numpy(),
            reconstruction[i].numpy(),
            data_range=255,
            channel_axis=0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert ours[i].item() == pytest.approx(expected, abs=1e-3)


def test_ssim_with_inferred_data_range_differs_from_range_255(pair):
    """torchmetrics infers max-min of the batch when data_range is None: a dark batch scores differently."""
    reference, reconstruction = pair
    dark_ref, dark_rec = reference // 4, reconstruction // 4
    inferred = tm_ssim(dark_rec.double(), dark_ref.double(), data_range=None, reduction="none")
    assert not torch.allclose(ssim(dark_ref, dark_rec), inferred, atol=1e-3)


def test_ssim_of_identical_images_is_one_and_psnr_inf_is_counted_not_averaged(pair):
    reference, reconstruction = pair
    assert torch.allclose(ssim(reference, reference), torch.ones(4, dtype=torch.float64))
    values = psnr(torch.cat([reference[:1], reference[:1]]), torch.cat([reference[:1], reconstruction[:1]]))
    assert math.isinf(values[0]) and math.isfinite(values[1])
    rows = [{"name": str(i), "psnr": float(v), "ssim": 1.0, "ssim_crop": 1.0} for i, v in enumerate(values)]
    result = summarize(rows, [])
    assert result["identical_images"] == 1 and result["psnr"] == pytest.approx(values[1].item())
    assert result["per_image"][0]["psnr"] is None


def test_to_uint8_clamps_and_rounds_half_up():
    pixels = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 1, 5)
    assert to_uint8(pixels).flatten().tolist() == [0, 0, 128, 255, 255]


def test_lpips_without_backbone_weights_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(UserError, match="alexnet-owt-7be5be79.pth"):
        build_lpips("alex")


def test_lpips_loads_backbone_from_a_file_and_scores_identical_images_zero(tmp_path, pair):
    import torchvision

    torch.manual_seed(0)
    backbone = torchvision.models.alexnet()
    path = tmp_path / "alexnet.pth"
    torch.save(backbone.state_dict(), path)
    model = build_lpips("alex", backbone=path)
    assert torch.equal(model.net.slice1[0].weight, backbone.features[0].weight)
    assert not any(p.requires_grad for p in model.parameters())
    reference, reconstruction = pair
    assert torch.allclose(lpips_distance(model, reference, reference), torch.zeros(4, dtype=torch.float64))
    distances = lpips_distance(model, reference, reconstruction)
    assert distances.shape == (4,) and (distances > 0).all()


class _Identity(torch.nn.Module):
    """A 'feature network' that hands the features through, so the Fréchet distance itself is tested."""

    def __init__(self, dims: int):
        super().__init__()
        self.num_features = dims

    def forward(self, features):
        return features.flatten(1).double()


def _fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    metric = fid_metric(_Identity(features_a.shape[1]))
    metric.update(torch.from_numpy(features_a), real=True)
    metric.update(torch.from_numpy(features_b), real=False)
    return float(metric.compute())


def test_fid_is_zero_for_equal_sets_grows_with_a_shift_and_matches_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 8))
    assert _fid(features, features) == pytest.approx(0.0, abs=1e-6)
    assert _fid(features, features + 0.5) == pytest.approx(8 * 0.25, rel=1e-4)
    other = rng.normal(size=(150, 8)) * 1.3 + 0.2
    stats = [(f.mean(0), np.cov(f, rowvar=False)) for f in (features, other)]
    with warnings.catch_warnings():  # pytorch-fid passes scipy's deprecated sqrtm(disp=False)
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = calculate_frechet_distance(*stats[0], *stats[1])
    assert _fid(features, other) == pytest.approx(expected, rel=1e-6)


def test_fid_features_without_inception_weights_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(UserError, match="pt_inception-2015-12-05-6726825d.pth"):
        build_fid_features()


class _ToyVAE(torch.nn.Module):
    """Hands pixels through `encode`/`decode` (plus fixed noise of `noise` in [-1, 1] units)."""

    def __init__(self, noise: float = 0.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(in_channels=3)
        self.noise = noise

    def encode(self, pixels):
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: pixels))

    def decode(self, latents, return_dict=False):
        generator = torch.Generator().manual_seed(0)
        return (latents + self.noise * torch.randn(latents.shape, generator=generator),)


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    """The real rFID feature network (pytorch-fid's FID InceptionV3) with random weights from a file."""
    import torchvision
    from pytorch_fid.inception import FID_WEIGHTS_URL

    torch.manual_seed(0)
    # FID Inception's patched blocks keep torchvision's parameters: the same state-dict keys
    inception = torchvision.models.inception_v3(
        weights=None, num_classes=1008, aux_logits=False, init_weights=False
    )
    path = tmp_path_factory.mktemp("weights") / Path(FID_WEIGHTS_URL).name
    torch.save(inception.state_dict(), path)
    hub = tmp_path_factory.mktemp("hub")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "get_dir", lambda: str(hub))
        model = build_fid_features(path)
    assert torch.equal(model.inception.blocks[0][0].conv.weight, inception.Conv2d_1a_3x3.conv.weight)
    return model


def test_evaluate_vae_rfid_is_zero_for_identical_sets_and_grows_with_noise(tmp_path, random_inception):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:32, 0:32]
    paths = []
    for i in range(6):
        phase = rng.uniform(0, 6, 3)
        image = 128 + 90 * np.sin(xx[..., None] / (3 + i) + phase) * np.cos(yy[..., None] / 5)
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    same, _ = evaluate_vae(_ToyVAE(), paths, size=32, batch_size=4, fid_features=random_inception)
    assert same["identical_images"] == 6 and math.isfinite(same["rfid"])
    noisy, _ = evaluate_vae(_ToyVAE(0.3), paths, size=32, batch_size=4, fid_features=random_inception)
    assert noisy["identical_images"] == 0 and math.isfinite(noisy["rfid"])
    assert abs(same["rfid"]) < 1e-6 * noisy["rfid"]
    assert noisy["rfid"] > 0


def test_evaluate_vae_rfid_of_one_image_is_a_user_error(tmp_path):
    path = tmp_path / "0.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(path)
    with pytest.raises(UserError, match="at least 2"):
        evaluate_vae(_ToyVAE(), [path], size=32, fid_features=_Identity(3 * 32 * 32).eval())
