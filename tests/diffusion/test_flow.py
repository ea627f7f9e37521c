import pytest
import torch

from qwen_image2.diffusion.flow import (
    dynamic_shift_mu,
    flow_target,
    noisy_latents,
    sample_training_sigmas,
    shift_sigmas,
)
from qwen_image2.diffusion.guidance import true_cfg
from qwen_image2.diffusion.sampling import set_schedule
from qwen_image2.models.presets import build_scheduler


@pytest.mark.parametrize("num_tokens", [256, 4096, 16384])
@pytest.mark.parametrize("num_steps", [8, 40])
def test_the_pipelines_schedule_is_the_published_grid_computed_directly(num_tokens, num_steps):
    """set_schedule (what the pipeline runs) against the published formula written out: linspace(1, 1/N, N),
    exponential shift by μ(tokens), 1 − σ stretched so the last σ is the terminal 0.02, then a final 0."""
    ours = set_schedule(build_scheduler("published"), num_steps, num_tokens).sigmas.double()
    base = torch.linspace(1.0, 1.0 / num_steps, num_steps, dtype=torch.float64)
    shifted = shift_sigmas(base, dynamic_shift_mu(num_tokens))
    one_minus = 1 - shifted
    expected = torch.cat([1 - one_minus / (one_minus[-1] / (1 - 0.02)), torch.zeros(1, dtype=torch.float64)])
    assert torch.allclose(ours, expected, atol=1e-6)
    assert ours[-2] == pytest.approx(0.02, abs=1e-6) and ours[-1] == 0


def test_dynamic_shift_matches_published_anchors():
    assert dynamic_shift_mu(256) == pytest.approx(0.5)
    assert dynamic_shift_mu(4096) == pytest.approx(0.694, abs=1e-3)  # 1024² at f16
    assert dynamic_shift_mu(16384) == pytest.approx(1.313, abs=1e-3)  # 2048², extrapolated


def test_shift_is_monotone_and_keeps_endpoints():
    sigmas = torch.linspace(0, 1, 101, dtype=torch.float64)
    shifted = shift_sigmas(sigmas, 1.0)
    assert shifted[0] == 0 and shifted[-1] == 1
    assert (shifted[1:] > shifted[:-1]).all() and (shifted[1:-1] > sigmas[1:-1]).all()


def test_interpolation_and_target_define_a_straight_path():
    x0, noise = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    sigmas = torch.tensor([0.25, 1.0])
    xt = noisy_latents(x0, noise, sigmas)
    assert torch.allclose(xt[1], noise[1])
    # One Euler step from σ to 0 along the true velocity recovers x0.
    assert torch.allclose(xt - sigmas.view(-1, 1, 1) * flow_target(x0, noise), x0, atol=1e-6)


def test_logit_normal_sigmas_follow_their_parameters():
    sigmas = sample_training_sigmas(20000, mean=1.0, std=0.5, generator=torch.Generator().manual_seed(0))
    logits = torch.logit(sigmas)
    assert logits.mean() == pytest.approx(1.0, abs=0.02) and logits.std() == pytest.approx(0.5, abs=0.02)
    assert ((sigmas > 0) & (sigmas < 1)).all()


def test_cfg_plain_and_with_v1_norm_rescale():
    positive, negative = torch.randn(2, 7, 64), torch.randn(2, 7, 64)
    assert torch.allclose(true_cfg(positive, negative, 1.0), positive)
    plain = true_cfg(positive, negative, 4.0)
    assert torch.allclose(plain, negative + 4 * (positive - negative))
    rescaled = true_cfg(positive, negative, 4.0, rescale=True)
    assert torch.allclose(rescaled.norm(dim=-1), positive.norm(dim=-1), atol=1e-5)
