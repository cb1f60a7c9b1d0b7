"""The learner: per-turn training payloads, micro-batches, and one rank's DiffusionNFT / Flow-GRPO
training on the editor's LoRA under FSDP2 or DeepSpeed ZeRO-2/3 (no Ray here; actors/learner.py
wraps it).

* :mod:`edit_rl.training.turn_sample` -- `TurnSample` (what a rollout worker puts in the object
  store per trajectory and turn), `split_rollout`, `collate_turn_samples`.
* :mod:`edit_rl.training.micro_batch` -- `MicroBatch`, `build_micro_batch` from the buffer's
  `TrainingSample`s.
* :mod:`edit_rl.training.learner` -- `Learner`: train_step, lora_state, save_lora, checkpoints.
"""
