"""Training objectives of the algorithm core: DiffusionNFT and Flow-GRPO losses on tensors.

* :mod:`edit_rl.objectives.nft` -- DiffusionNFT loss (implicit positive/negative velocities,
  adaptive x0-space weighting, velocity KL) and the per-sample timestep subset.
* :mod:`edit_rl.objectives.old_policy` -- old-policy decay schedules, in-place soft update,
  evaluation-EMA decay.
* :mod:`edit_rl.objectives.grpo` -- Flow-GRPO clipped surrogate, mean-KL, trained steps,
  zero-advantage filter.

Formulas and sources: docs/algorithms.md §3 and §4.
"""

from edit_rl.objectives.grpo import (
    GRPODiagnostics,
    GRPOLoss,
    clipped_surrogate,
    gaussian_mean_kl,
    grpo_loss,
    grpo_train_step_indices,
    importance_ratio,
    nonzero_advantage_mask,
)
from edit_rl.objectives.nft import (
    NFTDiagnostics,
    NFTLoss,
    nft_adaptive_weight,
    nft_implicit_velocities,
    nft_loss,
    nft_timestep_indices,
    nft_x0_loss,
    velocity_kl,
    x0_prediction,
)
from edit_rl.objectives.old_policy import ema_decay, old_policy_decay, soft_update_

__all__ = [
    "GRPODiagnostics",
    "GRPOLoss",
    "NFTDiagnostics",
    "NFTLoss",
    "clipped_surrogate",
    "ema_decay",
    "gaussian_mean_kl",
    "grpo_loss",
    "grpo_train_step_indices",
    "importance_ratio",
    "nft_adaptive_weight",
    "nft_implicit_velocities",
    "nft_loss",
    "nft_timestep_indices",
    "nft_x0_loss",
    "nonzero_advantage_mask",
    "old_policy_decay",
    "soft_update_",
    "velocity_kl",
    "x0_prediction",
]
