import numpy as np
import pytest
import torch
from PIL import Image

from qwen_image2.diffusion.loss import Sigma, draw_sigmas_and_noise, flow_matching_loss
from qwen_image2.errors import UserError
from qwen_image2.models.encoding import TrainingSample, encode_batch


def image(width, height, seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.fixture
def mixed_samples():
    """Two T2I samples of one size, one of another, and two edits (one and two references)."""
    return [
        TrainingSample("a red poster that says HELLO", image(64, 32, 0)),
        TrainingSample("a sign", image(64, 32, 1)),
        TrainingSample("a tall label", image(32, 64, 2)),
        TrainingSample("change the word to WORLD", image(64, 64, 3), [image(64, 64, 4)]),
        TrainingSample(
            "put picture 2 into picture 1", image(64, 64, 5), [image(64, 64, 6), image(32, 32, 7)]
        ),
    ]


def training_loss(transformer, batches, sigma=None, generator=None):
    """The trainer's loss over layout groups: `flow_matching_loss` per group, token-weighted."""
    sigma = sigma or Sigma()
    weights, losses = [], []
    for batch in batches:
        sigmas, noise = draw_sigmas_and_noise(*batch.target.shape, sigma, generator)
        losses.append(flow_matching_loss(transformer, batch, sigmas, noise))
        weights.append(batch.target.shape[0] * batch.target.shape[1])
    return sum(w * loss for w, loss in zip(weights, losses, strict=True)) / sum(weights)


def freeze_encoders(components):
    components.text_encoder.requires_grad_(False)
    components.vae.requires_grad_(False)


def test_loss_is_finite_over_text_to_image_and_edit_layouts(tiny, mixed_samples):
    batches = encode_batch(tiny, mixed_samples)
    assert sorted(b.target.shape[0] for b in batches) == [1, 1, 1, 2]
    loss = training_loss(tiny.transformer, batches, generator=torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_gradients_reach_every_transformer_parameter_and_nothing_frozen(tiny, mixed_samples):
    freeze_encoders(tiny)
    batches = encode_batch(tiny, mixed_samples)
    training_loss(tiny.transformer, batches, generator=torch.Generator().manual_seed(0)).backward()
    missing = [
        n for n, p in tiny.transformer.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []
    assert all(p.grad is None for p in tiny.text_encoder.parameters())
    assert all(p.grad is None for p in tiny.vae.parameters())


def test_fifty_steps_overfit_one_fixed_batch(tiny, mixed_samples):
    freeze_encoders(tiny)
    batches = encode_batch(tiny, mixed_samples[:2] + mixed_samples[3:4])
    optimizer = torch.optim.AdamW(tiny.transformer.parameters(), lr=3e-3)
    sigma = Sigma(mean=0.0, std=1.0)

    def fixed_loss():  # the same σ and noise every step: a fixed batch
        return training_loss(tiny.transformer, batches, sigma, torch.Generator().manual_seed(0))

    first = fixed_loss().item()
    for _ in range(50):
        optimizer.zero_grad()
        loss = fixed_loss()
        loss.backward()
        optimizer.step()
    assert fixed_loss().item() < 0.3 * first


def test_resolution_shift_moves_sigmas_up_for_large_images(tiny, mixed_samples):
    batches = encode_batch(tiny, mixed_samples[:1])
    plain = training_loss(
        tiny.transformer, batches, Sigma(resolution_shift=False), torch.Generator().manual_seed(0)
    )
    shifted = training_loss(
        tiny.transformer, batches, Sigma(resolution_shift=True), torch.Generator().manual_seed(0)
    )
    assert not torch.isclose(plain, shifted)


def test_training_images_must_be_multiples_of_32(tiny):
    with pytest.raises(UserError, match="multiples of 32"):
        encode_batch(tiny, [TrainingSample("x", image(40, 32, 0))])


def test_the_trainers_caption_dropout_drops_at_its_rate_and_is_a_function_of_seed_and_step():
    from qwen_image2.training.dit.train import caption_dropout_mask

    masks = np.stack([caption_dropout_mask(0, step, 64, 0.1) for step in range(200)])
    assert masks.mean() == pytest.approx(0.1, abs=0.01)
    assert np.array_equal(caption_dropout_mask(0, 7, 64, 0.1), masks[7])
    assert not np.array_equal(caption_dropout_mask(1, 7, 64, 0.1), masks[7])
    assert not caption_dropout_mask(0, 7, 64, 0.0).any() and caption_dropout_mask(0, 7, 64, 1.0).all()
