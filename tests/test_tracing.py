"""InferenceTrace: when a trace is made again, what it gives, and where it falls back to the module."""

from __future__ import annotations

import copy
import pickle

import torch
from torch import nn

from world_gym.backbones.pose_frame import rotate
from world_gym.tracing import InferenceTrace, float32_constants


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


class _Numbers(nn.Module):
    """Elementwise operations with Python numbers of every kind the tracer records."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a = (x * 16.0 + 1) / 3 - 0.1
        b = torch.remainder(a + 3.141592653589793, 2 * 3.141592653589793)
        c = 7.0 - torch.maximum(b, y) * (1 - x / 64.0)
        return torch.where((c > 0) & (y < 0.25), c, torch.minimum(c, y) + 2)


def test_float32_constants_gives_the_same_numbers_without_converting_them_each_call():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4096, 3, generator=g) * 10, torch.rand(4096, 3, generator=g)
    net = _Numbers()
    plain = torch.jit.trace(net, (x[:1], y[:1]))
    rewritten = torch.jit.trace(net, (x[:1], y[:1]))
    assert float32_constants(rewritten.graph) >= 9
    for i in range(0, 4096, 64):  # row by row batches, as the trace was made for
        assert torch.equal(rewritten(x[i:i + 1], y[i:i + 1]), plain(x[i:i + 1], y[i:i + 1]))
    assert torch.equal(rewritten(x, y), net(x, y))
    # a float64 graph and a 0-dim operand keep their numbers (their results would change)
    assert float32_constants(torch.jit.trace(net, (x[:1].double(), y[:1].double())).graph) == 0
    assert float32_constants(torch.jit.trace(lambda t: t * 3.0, (torch.tensor(2.0),)).graph) == 0
    # InferenceTrace's traces are rewritten: no conversion of a number left in a call
    from torch.profiler import ProfilerActivity, profile

    traced = InferenceTrace()(net, (x[:1], y[:1]))
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        out = traced(x[:1], y[:1])
    assert torch.equal(out, plain(x[:1], y[:1]))
    assert not [e for e in prof.events() if e.name == "aten::_to_copy"]


def test_rotate_is_the_rotation_formula_bit_for_bit():
    g = torch.Generator().manual_seed(1)
    v, angle = torch.randn(10000, 2, generator=g) * 100, torch.randn(10000, generator=g) * 4
    cos, sin = torch.cos(angle), torch.sin(angle)
    formula = torch.stack([cos * v[:, 0] - sin * v[:, 1], sin * v[:, 0] + cos * v[:, 1]], -1)
    assert torch.equal(rotate(v, cos, sin), formula)
    assert torch.equal(rotate(v.bfloat16(), cos.bfloat16(), sin.bfloat16()),
                       torch.stack([cos.bfloat16() * v[:, 0].bfloat16() - sin.bfloat16() * v[:, 1].bfloat16(),
                                    sin.bfloat16() * v[:, 0].bfloat16() + cos.bfloat16() * v[:, 1].bfloat16()], -1))
