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
