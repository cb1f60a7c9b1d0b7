"""The trajectory buffer between rollout workers, the two scoring services (IF judge, CC scorer)
and the learner ranks. No Ray, no tensors of images: payloads are opaque handles.

Flow per driver step:

1. ``GroupAssembler.expect(step, chain_ids)``; workers deliver ``Rollout``s
   (``add_rollout``), the services per-turn scores (``add_if_scores``, ``add_cc_scores``), in any
   order, possibly twice; ``pop_ready()`` returns complete ``TrajectoryGroup``s and
   ``drop_incomplete(reason)`` gives up on the rest (:mod:`edit_rl.buffer.assembler`).
2. ``build_training_batch(groups, ...)``: rewards, Edit-R1 filter, fused advantages, per-turn
   advantages, NFT r -> one ``TrainingSample`` per (trajectory, turn), the drop log and the
   step's ``BatchStats`` (:mod:`edit_rl.buffer.training_batch`).
3. ``shard_samples(samples, num_ranks, micro_batch_size)``: equal micro-batch counts per rank,
   padded with weight-0 copies (:mod:`edit_rl.buffer.sharding`).
"""

from edit_rl.buffer.assembler import AssemblerCounters, GroupAssembler, UnknownRolloutError
from edit_rl.buffer.records import DroppedGroup, Rollout, ScoredTrajectory, TrajectoryGroup, TurnScores
from edit_rl.buffer.sharding import ShardedSamples, shard_samples
from edit_rl.buffer.training_batch import (
    NAN_SCORE,
    BatchStats,
    TrainingBatch,
    TrainingSample,
    build_training_batch,
)

__all__ = [
    "NAN_SCORE",
    "AssemblerCounters",
    "BatchStats",
    "DroppedGroup",
    "GroupAssembler",
    "Rollout",
    "ScoredTrajectory",
    "ShardedSamples",
    "TrainingBatch",
    "TrainingSample",
    "TrajectoryGroup",
    "TurnScores",
    "UnknownRolloutError",
    "build_training_batch",
    "shard_samples",
]
