"""FLOPs and activation bytes of each editor's transformer at a preset's shapes, from fake tensors.

Costs are per sample: traced at batch 1 and 2, the increment is one sample's and the rest is held
once per call (`per_sample_and_fixed`).
A reduced-depth copy at the real width (one block of each kind) is traced with `trace_call`:
one no-grad forward (a rollout step) and one forward + backward with frozen weights and, when the
preset asks, per-block gradient checkpointing (a learner micro-batch). Full-depth numbers follow
from the per-block measurements (`full_depth_flops`, `full_depth_training_bytes`). Sequence
lengths follow the editors: target and reference image tokens (resolution / 16 squared each) and
``max_sequence_length`` text tokens (an upper bound for Qwen-Image-Edit, whose prompt length varies).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from edit_rl.planning.architectures import TRANSFORMER_OF, block_counts, build_on
from edit_rl.planning.fake_trace import trace_call

BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks")


@dataclass(frozen=True)
class TransformerCosts:
    """The full-depth transformer's cost per sample.

    forward_flops: a no-grad forward. training_flops: forward + backward with frozen weights
    (recomputation included when checkpointing). inference_bytes: peak activation bytes of the
    no-grad forward. training_bytes: peak activation bytes of forward + backward (weights,
    gradients of LoRA and optimizer state excluded)."""

    family: str
    image_tokens: int
    text_tokens: int
    gradient_checkpointing: bool
    forward_flops: int
    training_flops: int
    inference_bytes: int
    training_bytes: int
    fixed_bytes: int  # held once per call whatever the batch

    def batch_inference_bytes(self, batch: int) -> int:
        return self.fixed_bytes + batch * self.inference_bytes

    def batch_training_bytes(self, batch: int) -> int:
        return self.fixed_bytes + batch * self.training_bytes


def image_tokens(resolution: int) -> int:
    """Packed tokens of one image: (resolution / 8 latent) / 2 patches, squared."""
    return (resolution // 16) ** 2


def _inputs(family: str, model: nn.Module, batch: int, resolution: int, text: int) -> dict[str, Any]:
    side = resolution // 16
    tokens = 2 * side * side  # target + reference image tokens
    cfg = model.config
    hidden = torch.randn(batch, tokens, cfg.in_channels)
    encoder = torch.randn(batch, text, cfg.joint_attention_dim)
    timestep = torch.rand(batch)
    if family == "flux_kontext":
        return dict(hidden_states=hidden, encoder_hidden_states=encoder, timestep=timestep,
                    pooled_projections=torch.randn(batch, cfg.pooled_projection_dim),
                    guidance=torch.full((batch,), 2.5), img_ids=torch.zeros(tokens, 3), txt_ids=torch.zeros(text, 3))
    if family == "flux2_klein":
        return dict(hidden_states=hidden, encoder_hidden_states=encoder, timestep=timestep, guidance=None,
                    img_ids=torch.zeros(tokens, 4, dtype=torch.long), txt_ids=torch.zeros(text, 4, dtype=torch.long))
    if family == "qwen_image_edit":
        return dict(hidden_states=hidden, encoder_hidden_states=encoder, timestep=timestep, guidance=None,
                    img_shapes=[[(1, side, side), (1, side, side)]] * batch)
    raise KeyError(f"no transformer inputs for editor family {family!r}")


def full_depth_flops(reduced_total: int, per_block: dict[str, int], counts: dict[str, int]) -> int:
    """F_full = F_reduced + sum_kind (n_kind - 1) F_block(kind): the reduced copy holds one block of
    each kind, every further block of a kind costs what the traced one did."""
    return reduced_total + sum((counts[kind] - 1) * per_block[kind] for kind in counts)


def full_depth_training_bytes(reduced_peak: int, kept_per_block: dict[str, int], counts: dict[str, int]) -> int:
    """M_full = M_reduced + sum_kind (n_kind - 1) K(kind), K = the bytes a block keeps from its forward
    until its backward: its input activations when checkpointed, else the tensors autograd saves."""
    return reduced_peak + sum((counts[kind] - 1) * kept_per_block[kind] for kind in counts)


def _per_block_kept(model: nn.Module, run: Callable[[], None], checkpointing: bool) -> dict[str, int]:
    """Bytes each traced block keeps for its backward: saved tensors (no checkpointing) or its (B, L, D)
    activation inputs (checkpointing), attributed with forward hooks."""
    kept = {kind: 0 for kind in BLOCK_LISTS if len(getattr(model, kind, []))}
    current: list[str | None] = [None]
    seen: set[int] = set()
    handles = []
    for kind in kept:
        block = getattr(model, kind)[0]

        def pre(_m, args, kwargs, kind=kind):  # type: ignore[no-untyped-def]
            current[0] = kind
            if checkpointing:
                kept[kind] += sum(t.nbytes for t in list(args) + list(kwargs.values())
                                  if isinstance(t, torch.Tensor) and t.dim() == 3)

        handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(block.register_forward_hook(lambda *_: current.__setitem__(0, None)))

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = id(t.untyped_storage())
        if current[0] is not None and not checkpointing and key not in seen:
            seen.add(key)
            kept[current[0]] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    for h in handles:
        h.remove()
    return kept


@dataclass(frozen=True)
class _DepthScaled:
    """A reduced-depth trace scaled to full depth at one batch size."""

    forward_flops: int
    training_flops: int
    inference_bytes: int
    training_bytes: int


def _trace_full_depth(family: str, batch: int, resolution: int, text_tokens: int, gradient_checkpointing: bool,
                      dtype: torch.dtype) -> _DepthScaled:
    name = TRANSFORMER_OF[family]
    doubles, singles = block_counts(name)
    counts = {kind: n for kind, n in zip(BLOCK_LISTS, (doubles, singles)) if n}
    reduced = {"num_layers": 1} | ({"num_single_layers": 1} if singles else {})
    with FakeTensorMode():
        model = build_on(name, "cpu", dtype, **reduced)
        model.requires_grad_(False)
        inputs = _inputs(family, model, batch, resolution, text_tokens)
        inputs = {k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                  for k, v in inputs.items()}

        def forward() -> None:
            with torch.no_grad():
                model(**inputs, return_dict=False)

        def with_grad() -> torch.Tensor:
            hidden = inputs["hidden_states"].detach().requires_grad_(True)
            return model(**{**inputs, "hidden_states": hidden}, return_dict=False)[0]

        inference = trace_call(forward)
        if gradient_checkpointing:
            model.enable_gradient_checkpointing()
        training = trace_call(lambda: with_grad().float().pow(2).mean().backward())
        model.disable_gradient_checkpointing()
        kept = _per_block_kept(model, with_grad, gradient_checkpointing)
    per_block = {kind: inference.module_flops[f"{type(model).__name__}.{kind}.0"] for kind in counts}
    forward_flops = full_depth_flops(inference.flops, per_block, counts)
    return _DepthScaled(forward_flops, round(training.flops * forward_flops / inference.flops),
                        inference.peak_bytes, full_depth_training_bytes(training.peak_bytes, kept, counts))


def per_sample_and_fixed(at_one: int, at_two: int) -> tuple[int, int]:
    """(per sample, fixed) of a cost linear in the batch, c(B) = fixed + B x per_sample, from B = 1, 2.
    The fixed part is what every call holds once: rotary tables, timestep embeddings."""
    per_sample = at_two - at_one
    return per_sample, at_one - per_sample


@functools.lru_cache(maxsize=None)
def transformer_costs(family: str, resolution: int, text_tokens: int,
                      gradient_checkpointing: bool, dtype: torch.dtype = torch.bfloat16) -> TransformerCosts:
    """Trace the family's transformer (one block per kind, real width) at batch 1 and 2, scale each to
    full depth and keep the per-sample increment (`per_sample_and_fixed`); the fixed part is kept in
    ``fixed_bytes`` (the larger of inference and training)."""
    one = _trace_full_depth(family, 1, resolution, text_tokens, gradient_checkpointing, dtype)
    two = _trace_full_depth(family, 2, resolution, text_tokens, gradient_checkpointing, dtype)
    inference, inference_fixed = per_sample_and_fixed(one.inference_bytes, two.inference_bytes)
    training, training_fixed = per_sample_and_fixed(one.training_bytes, two.training_bytes)
    return TransformerCosts(
        family=family, image_tokens=image_tokens(resolution), text_tokens=text_tokens,
        gradient_checkpointing=gradient_checkpointing,
        forward_flops=per_sample_and_fixed(one.forward_flops, two.forward_flops)[0],
        training_flops=per_sample_and_fixed(one.training_flops, two.training_flops)[0],
        inference_bytes=inference, training_bytes=training,
        fixed_bytes=max(0, inference_fixed, training_fixed))
