"""InferenceTrace: when a trace is made again, what it gives, and where it falls back to the module."""

from __future__ import annotations

import copy
import pickle

import torch
from torch import nn

from world_gym.tracing import InferenceTrace


class _Sized(nn.Module):
    """A forward that reads a size as a Python number (a trace fixes it)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x)) * len(x)


class _Untraceable(nn.Module):
    def forward(self, x: torch.Tensor) -> dict:
        return {"sum": float(x.sum())}


def test_a_trace_is_kept_until_weights_dtype_or_shapes_change():
    torch.manual_seed(0)
    net = _Sized().eval()
    trace = InferenceTrace(static_shapes=True)
    x2, x5 = torch.randn(2, 3), torch.randn(5, 3)
    first = trace(net, (x2,))
    assert first is not net and trace(net, (x2,)) is first
    with torch.no_grad():
        assert torch.equal(first(x2), net(x2))
        assert torch.equal(trace(net, (x5,))(x5), net(x5))  # a new batch size: traced again, sizes right
        net.linear.weight.mul_(2.0)  # new weights in place: traced again
        assert torch.equal(trace(net, (x5,))(x5), net(x5))
        kept = trace(net, (x5,))
        net.double()  # another dtype: traced again
        assert trace(net, (x5.double(),)) is not kept
        assert torch.equal(trace(net, (x5.double(),))(x5.double()), net(x5.double()))
    # without static shapes the trace of one batch size is kept for another (for forwards that allow it)
    loose = InferenceTrace()
    plain = nn.Sequential(nn.Linear(3, 4), nn.Tanh()).eval()
    assert loose(plain, (x2,)) is loose(plain, (x5,))


def test_an_unoptimized_trace_gives_the_modules_gradients_bit_for_bit():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.Softplus(), nn.Linear(16, 3)).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    trace = InferenceTrace(static_shapes=True, optimize=False)
    for _ in range(5):  # the graph executor would optimize from the third call on
        x = torch.randn(4, 3, requires_grad=True)
        (grad,) = torch.autograd.grad(trace(net, (x,))(x).sin().sum(), x)
        (expected,) = torch.autograd.grad(net(x).sin().sum(), x)
        assert torch.equal(grad, expected)


def test_a_module_that_does_not_trace_runs_itself_and_copies_drop_the_trace():
    x = torch.ones(2, 3)
    net = _Untraceable()
    assert InferenceTrace()(net, (x,)) is net
    trace = InferenceTrace(static_shapes=True)
    trace(_Sized(), (x,))
    assert trace.traced is not None
    for clone in (pickle.loads(pickle.dumps(trace)), copy.deepcopy(trace)):
        assert clone.traced is None and clone.static_shapes
