import pytest
import torch
from torch import nn

from learning.averaging import interpolate_states


def _bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net.train()
    net(torch.randn(2, 3, 8, 8) * (seed + 1))  # moves the running statistics and the step counter
    return net


def test_interpolation_is_linear_in_float_tensors_and_keeps_the_trained_counters():
    start, trained = _bn_net(0).state_dict(), _bn_net(1).state_dict()
    trained["1.num_batches_tracked"] = torch.tensor(7)
    mixed = interpolate_states(start, trained, 0.25)
    for key in ("0.weight", "1.running_mean", "1.running_var"):
        assert torch.allclose(mixed[key], 0.25 * start[key] + 0.75 * trained[key])
    assert mixed["1.num_batches_tracked"].item() == 7
    assert mixed["1.num_batches_tracked"].dtype == torch.long


def test_the_ends_are_the_two_models():
    start, trained = _bn_net(0).state_dict(), _bn_net(1).state_dict()
    assert all(torch.equal(interpolate_states(start, trained, 0.0)[k], trained[k]) for k in trained)
    assert all(torch.allclose(interpolate_states(start, trained, 1.0)[k], start[k].to(trained[k].dtype))
               for k in trained if trained[k].is_floating_point())


def test_the_inputs_are_left_untouched():
    start, trained = _bn_net(0).state_dict(), _bn_net(1).state_dict()
    before = {k: v.clone() for k, v in trained.items()}
    interpolate_states(start, trained, 0.5)
    assert all(torch.equal(before[k], trained[k]) for k in trained)


def test_different_architectures_are_refused():
    start = _bn_net(0).state_dict()
    other = nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5)).state_dict()
    with pytest.raises(ValueError, match="shape"):
        interpolate_states(start, other, 0.5)
    with pytest.raises(ValueError, match="different tensors"):
        interpolate_states(start, nn.Sequential(nn.Conv2d(3, 4, 3)).state_dict(), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_states(start, start, 1.5)
