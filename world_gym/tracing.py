"""TorchScript traces of small networks whose calls at batch 1 on a CPU cost more in Python between
operations than in the operations themselves (the Push-T pose step, the sprite renderer).

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh()).eval()
>>> trace = InferenceTrace()
>>> x = torch.ones(2, 3)
>>> torch.equal(trace(net, (x,))(x), net(x)), trace(net, (x,)) is trace(net, (x,))
(True, True)
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn


class InferenceTrace:
    """The TorchScript trace of a module for the inputs it is called with, kept while nothing it was
    traced for changes: the module, its parameters (storage, dtype, in-place version), the inputs'
    dtype and device, and with ``static_shapes`` their shapes (for a module whose forward reads sizes
    as Python numbers, which a trace fixes). A trace runs the same operations in the same order as the
    module, so its outputs are the module's bit for bit where autograd is off. Where autograd runs
    through the trace (to its inputs), ``optimize=False`` keeps them so: the TorchScript interpreter then
    runs it without its graph optimizations, which differentiate some operations by their own formulas
    (results equal to float rounding from the third call on), at some cost (the Push-T pose step at
    batch 1: 3.7 instead of 3.2 ms).
    Use it only where the module's parameters need no gradient and its forward does not branch on
    values. Where tracing fails (a later torch may not trace), the module itself is returned.

    A float32 trace's Python-number constants become one-element float32 tensors
    (:func:`float32_constants`): the same values, without a conversion of the number on every
    operation that uses it (the Push-T pose step at batch 1: about a tenth faster).

    Not pickled: a copy starts without a trace and makes one on its first call.
    """

    def __init__(self, static_shapes: bool = False, optimize: bool = True) -> None:
        self.static_shapes = static_shapes
        self.optimize = optimize
        self._entry: tuple[tuple[Any, ...], nn.Module] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_entry": None}

    @property
    def traced(self) -> nn.Module | None:
        """The trace made last (None before the first call)."""
        return None if self._entry is None else self._entry[1]

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> nn.Module:
        """The trace of ``module`` for ``args`` (made now if none fits), or ``module`` itself."""
        key = (id(module), *((a.dtype, a.device, *(a.shape if self.static_shapes else ())) for a in args),
               *((p.data_ptr(), p.dtype, p._version) for p in module.parameters()))
        if self._entry is None or self._entry[0] != key:
            with warnings.catch_warnings():
                # torch 2.10 calls tracing deprecated and warns of sizes read as numbers (static_shapes keys them)
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    traced = torch.jit.trace(module, args, check_trace=False)
                    float32_constants(traced.graph)
                    traced = traced if self.optimize else _Unoptimized(traced)
                except Exception:  # noqa: BLE001
                    traced = module
            self._entry = (key, traced)
        return self._entry[1]


class _Unoptimized(nn.Module):
    """A TorchScript module run without the graph executor's optimizations."""

    def __init__(self, script: nn.Module) -> None:
        super().__init__()
        self.script = script

    def forward(self, *args: torch.Tensor) -> Any:
        with torch.jit.optimized_execution(False):
            return self.script(*args)


#: Elementwise operations whose number operand may be a one-element tensor instead (same values).
_ELEMENTWISE = frozenset({"aten::mul", "aten::div", "aten::add", "aten::sub", "aten::rsub", "aten::remainder",
                          "aten::gt", "aten::lt", "aten::ge", "aten::le", "aten::maximum", "aten::minimum"})


def float32_constants(graph: torch.Graph) -> int:
    """Rewrites a traced graph (inlined first) so that the number each elementwise operation on a
    float32 tensor of one or more dimensions reads beside it (a Python number, or the 0-dim float64 or
    int64 constant the tracer records for one, which the TorchScript executor turns back into a number)
    is a one-element float32 tensor constant instead. The operation converted the number to float32
    before computing, so its results are the same bit for bit; the number's conversion on every call
    (about 1.5 us of the 2.8 an operation on a few elements costs at batch 1) is gone. Returns how many
    it rewrote.

    >>> import torch
    >>> f = torch.jit.trace(lambda x: (x * 16.0 + 1) / 3 - 0.1 > 0, (torch.ones(2),))
    >>> float32_constants(f.graph), torch.equal(f(torch.ones(2)), (torch.ones(2) * 16.0 + 1) / 3 - 0.1 > 0)
    (5, True)
    """
    torch._C._jit_pass_inline(graph)
    done = 0
    for node in list(graph.nodes()):
        inputs = list(node.inputs())
        if node.kind() not in _ELEMENTWISE or len(inputs) < 2:
            continue
        this, other = inputs[0].type(), inputs[1]
        if (not isinstance(this, torch.TensorType) or inputs[0].node().kind() == "prim::Constant"
                or this.scalarType() != "Float" or not this.dim()):
            continue  # a dimension needed: a 0-dim operand would broadcast to one element
        number = _number(other)
        if number is None:
            continue
        replacement = graph.insertConstant(torch.tensor([number], dtype=torch.float32))
        replacement.node().moveBefore(node)
        if isinstance(other.type(), torch.TensorType):  # the same overload, another constant
            node.replaceInput(1, replacement)
        else:  # the Scalar overload becomes the Tensor one
            new = graph.create(node.kind(), [inputs[0], replacement, *inputs[2:]], 1)
            new.output().setType(node.output().type())
            new.insertBefore(node)
            node.output().replaceAllUsesWith(new.output())
            node.destroy()
        done += 1
    if done:
        torch._C._jit_pass_dce(graph)
    return done


def _number(value: torch.Value) -> float | int | None:
    """The number a graph value holds: a constant Python float or int, or a 0-dim float64 or int64
    tensor constant (None for anything else)."""
    const = value.node()
    if const.kind() != "prim::Constant" or not const.hasAttribute("value"):
        return None
    kind = const.kindOf("value")
    if kind == "t":
        tensor = const.t("value")
        return tensor.item() if tensor.dim() == 0 and tensor.dtype in (torch.float64, torch.int64) else None
    if kind == "f":
        return const.f("value")
    if kind == "i" and str(value.type()) == "int":
        return const.i("value")
    return None
