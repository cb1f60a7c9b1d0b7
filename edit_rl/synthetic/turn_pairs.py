"""Ground-truth single turns of synthetic chains: (image before, instruction, image after).

Turn k of a chain edits the ground-truth image after turn k - 1 (the chain's reference image for
k = 1) into the rendering of its ``target_state``. Supervised pre-training draws from these
pairs, and the clean-input evaluation edits their inputs.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from edit_rl.data.chain import EditChain
from edit_rl.synthetic.render import render
from edit_rl.synthetic.world import Geometry, Scene


def chain_images(chain: EditChain, geometry: Geometry) -> list[np.ndarray]:
    """uint8 (H, W, 3) ground truth of a chain: its reference image, then the image after each turn."""
    reference = np.asarray(chain.load_image())
    if reference.shape[:2] != (geometry.image_size, geometry.image_size):
        raise ValueError(f"chain {chain.chain_id!r}: image {reference.shape[:2]} is not "
                         f"{geometry.image_size}x{geometry.image_size}")
    after = []
    for k, turn in enumerate(chain.turns):
        if turn.target_state is None:
            raise ValueError(f"chain {chain.chain_id!r} turn {k + 1}: no target_state (not a synthetic chain?)")
        after.append(render(Scene.from_json(turn.target_state), geometry))
    return [reference, *after]


def _chw(images: Sequence[np.ndarray]) -> Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class TurnPairs:
    """N single turns, chain-major (chain c's turn k at row c * T + k when every chain has T turns).
    inputs / targets: uint8 (N, 3, H, W)."""

    inputs: Tensor
    targets: Tensor
    instructions: tuple[str, ...]
    task_types: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.instructions)

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor, list[str]]:
        """Rows ``index``: (inputs, targets) float32 in [0, 1], and their instructions."""
        return (self.inputs[index].float() / 255, self.targets[index].float() / 255,
                [self.instructions[i] for i in index.tolist()])


def turn_pairs(chains: Sequence[EditChain], geometry: Geometry = Geometry()) -> TurnPairs:
    """Every turn of every chain as a ground-truth pair."""
    inputs, targets, instructions, task_types = [], [], [], []
    for chain in chains:
        images = chain_images(chain, geometry)
        inputs += images[:-1]
        targets += images[1:]
        instructions += [t.instruction for t in chain.turns]
        task_types += [t.task_type for t in chain.turns]
    return TurnPairs(_chw(inputs), _chw(targets), tuple(instructions), tuple(task_types))
