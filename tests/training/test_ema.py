import torch

from qwen_image2.training.ema import EMA


def test_ema_tracks_trainable_weights_and_copies_back():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    model[1].requires_grad_(False)
    ema = EMA(model, decay=0.5)
    assert set(ema.shadow) == {"0.weight", "0.bias"}
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(2.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["0.weight"], start + 1.0)  # halfway to the new weights
    ema.copy_to(model)
    assert torch.allclose(model[0].weight, start + 1.0)
    restored = EMA(model, decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.shadow["0.weight"], ema.shadow["0.weight"])
