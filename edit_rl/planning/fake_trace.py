"""Measuring a call on fake tensors: its FLOPs and the peak bytes of the tensors it creates.

Under torch's FakeTensorMode nothing is computed or allocated, but every operator runs with its
real output shapes, so a real-width model costs milliseconds and no memory. `trace_call` counts
FLOPs with torch's FlopCounterMode (plus the CPU flash-attention kernel that FakeTensorMode's SDPA
picks and the counter does not know, with the counter's own SDPA formulas) and follows the bytes
alive with a dispatch mode: each new output storage adds its size until Python frees it. Inputs
and parameters made before the call are not counted, so the peak is the call's activation and
temporary memory. CPU flash attention keeps only its output and log-sum-exp for backward, as the
GPU kernels do, so the attention matrix is never counted.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

aten = torch.ops.aten


def _cpu_flash_flops(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


def _cpu_flash_backward_flops(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None,
                              **kwargs: Any) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


_ATTENTION_FLOPS = {  # the counter passes shapes, as to its own formulas
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_flops,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward_flops,
}


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages created inside the mode and still referenced; ``peak`` is their maximum.
    Views and in-place results (outputs the operator's schema marks as aliases) add nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        if any(r.alias_info is not None for r in func._schema.returns):
            return out  # a view or an in-place result: no new storage
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage not in self._seen:
                    nbytes = storage.nbytes()
                    self._seen[storage] = nbytes
                    self.live += nbytes
                    weakref.finalize(storage, self._release, nbytes)
        self.peak = max(self.peak, self.live)
        return out


@dataclass(frozen=True)
class CallTrace:
    """FLOPs of a call (total and per module name) and the peak bytes it allocated."""

    flops: int
    module_flops: dict[str, int]
    peak_bytes: int


def trace_call(fn: Callable[[], Any]) -> CallTrace:
    """Run ``fn`` (on fake tensors) under the FLOP counter and the live-bytes tracker."""
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=dict(_ATTENTION_FLOPS))
    live = LiveBytes()
    with counter, live:
        fn()
    per_module = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    return CallTrace(flops=counter.get_total_flops(), module_flops=per_module, peak_bytes=live.peak)
