"""Metric functions against scikit-image and torchmetrics, and the pitfalls of vae_eval_perf.md §4."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from qwen_image2.errors import UserError
from qwen_image2.evaluation.reconstruction import summarize
from qwen_image2.metrics.fidelity import (
    build_lpips,
    frechet_distance,
    gaussian_window,
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


def test_gaussian_window_is_11_taps_normalised():
    window = gaussian_window()
    assert window.shape == (11, 11) and window.sum().item() == pytest.approx(1.0)


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


def test_frechet_distance_is_zero_for_equal_sets_and_grows_with_a_shift():
    features = np.random.default_rng(0).normal(size=(200, 8))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features, features + 0.5) == pytest.approx(8 * 0.25, rel=1e-4)
