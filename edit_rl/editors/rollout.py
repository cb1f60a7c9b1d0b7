"""Multi-turn rollouts: a chain of T instructions, G samples per chain, turn k edits turn k-1's output.

MT-EditFlow (docs/algorithms.md §5): turn 1's reference is the input image, turn
k's reference is turn k-1's decoded output (the image the judge sees), so every turn's condition is
the model's own previous edit. All rows of all chains run as one batch per turn. The LoRA adapter
in use (e.g. "old" for DiffusionNFT) is the caller's choice (`edit_rl.editors.lora.active_adapter`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from edit_rl.config.schema import SamplerConfig
from edit_rl.editors.base import EditCondition, Editor
from edit_rl.flow.sampling import sample


@dataclass(frozen=True)
class TurnRollout:
    """One turn for all B = C * G rows (row c * G + g: chain c, sample g).

    prompts: the turn's instruction per row. images (B, 3, H, W) in [0, 1]: decoded outputs.
    x0 (B, ...): final latents (what DiffusionNFT trains on). condition: recomputes the velocity.
    sigmas (n + 1,): the grid. For method "sde" (else None), as `SamplingResult`:
    latents / next_latents (B, n, ...), sde_steps (K,), log_probs (B, K) float32.
    """

    prompts: list[str]
    images: Tensor
    x0: Tensor
    condition: EditCondition
    sigmas: Tensor
    latents: Tensor | None = None
    next_latents: Tensor | None = None
    sde_steps: Tensor | None = None
    log_probs: Tensor | None = None


@dataclass(frozen=True)
class MultiTurnRollout:
    """T turns of C chains x G samples. input_images (B, 3, H, W): each row's turn-1 reference."""

    input_images: Tensor
    turns: list[TurnRollout]
    num_chains: int
    group_size: int

    def reference_images(self, turn: int) -> Tensor:
        """The image turn ``turn`` (0-based) edited: the input for turn 0, else the previous output."""
        return self.input_images if turn == 0 else self.turns[turn - 1].images

    @property
    def group_ids(self) -> Tensor:
        """(B,) chain index of each row: the group for group-relative advantages."""
        return torch.arange(self.num_chains).repeat_interleave(self.group_size)


def _check_chains(input_images: Tensor, instructions: Sequence[Sequence[str]]) -> int:
    if input_images.ndim != 4 or input_images.shape[0] != len(instructions):
        raise ValueError(f"need one input image per chain: images {tuple(input_images.shape)}, "
                         f"{len(instructions)} chains")
    lengths = {len(chain) for chain in instructions}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"every chain needs the same number (>= 1) of instructions, got lengths {sorted(lengths)}")
    return lengths.pop()


@torch.no_grad()
def rollout_chains(
    editor: Editor,
    input_images: Tensor,
    instructions: Sequence[Sequence[str]],
    group_size: int,
    sampler: SamplerConfig,
    generator: torch.Generator,
    evaluation: bool = False,
) -> MultiTurnRollout:
    """Roll out C chains (input_images (C, 3, H, W) in [0, 1], instructions C x T) G times each.

    Per turn: condition on (instruction, reference image), draw the initial noise from
    ``generator`` (then the SDE noise, if any), integrate with ``sampler.method`` over
    ``editor.sigmas(sampler.num_steps)``, decode. ``evaluation`` uses ``sampler.eval_method`` and
    ``eval_num_steps`` instead. Deterministic given the generator's state. Steps are recorded
    (latents, next latents, log-probs) for method "sde", which GRPO trains on.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    sampler.validate()
    num_turns = _check_chains(input_images, instructions)
    method = sampler.eval_method if evaluation else sampler.method
    num_steps = sampler.eval_num_steps if evaluation else sampler.num_steps
    sde_window = tuple(sampler.sde_window) if method == "sde" and sampler.sde_window is not None else None
    sigmas = editor.sigmas(num_steps)

    inputs = input_images.float().repeat_interleave(group_size, dim=0)
    reference = inputs
    turns: list[TurnRollout] = []
    for k in range(num_turns):
        prompts = [chain[k] for chain in instructions for _ in range(group_size)]
        cond = editor.condition(prompts, reference)
        x_init = editor.initial_noise(len(prompts), generator)
        result = sample(
            lambda x, sigma: editor.velocity(x, sigma, cond),
            x_init, sigmas, method,
            generator=generator, noise_level=sampler.noise_level, sde_window=sde_window,
            sde_kind=sampler.sde_kind, record=method == "sde",
        )
        images = editor.decode(result.x0)
        turns.append(TurnRollout(
            prompts=prompts, images=images, x0=result.x0, condition=cond, sigmas=result.sigmas,
            latents=result.latents, next_latents=result.next_latents, sde_steps=result.sde_steps,
            log_probs=result.log_probs,
        ))
        reference = images
    return MultiTurnRollout(input_images=inputs, turns=turns, num_chains=len(instructions), group_size=group_size)
