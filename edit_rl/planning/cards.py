"""The GPUs the planner knows: memory, dense bf16 peak, HBM and NVLink bandwidth (vendor datasheets,
SXM parts; NVLink per direction)."""
from __future__ import annotations

from dataclasses import dataclass

GB = 10 ** 9
GIB = 2 ** 30


@dataclass(frozen=True)
class Card:
    name: str
    memory_bytes: int
    bf16_tflops: float  # dense, no sparsity
    hbm_tb_s: float
    nvlink_gb_s: float


CARDS: dict[str, Card] = {
    "b200": Card("b200", 180 * GB, 2250.0, 8.0, 900.0),
    "h200": Card("h200", 141 * GB, 989.0, 4.8, 450.0),
    "h100": Card("h100", 80 * GB, 989.0, 3.35, 450.0),
    "a100-80": Card("a100-80", 80 * GB, 312.0, 2.0, 300.0),
}
ALLOCATOR_MARGIN = 0.10  # caching-allocator fragmentation and NCCL / cuBLAS workspaces
CUDA_CONTEXT_BYTES = 1 * GIB


def usable_bytes(card: Card, gpu_fraction: float = 1.0) -> int:
    """usable = fraction x ((1 - margin) x memory - CUDA context): what a role may plan to hold."""
    return int(gpu_fraction * ((1 - ALLOCATOR_MARGIN) * card.memory_bytes - CUDA_CONTEXT_BYTES))


def card(name: str) -> Card:
    if name not in CARDS:
        raise KeyError(f"unknown GPU {name!r}; one of {sorted(CARDS)}")
    return CARDS[name]
