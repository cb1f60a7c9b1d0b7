"""The shapes world's research: the proof job, the base editor's pre-training, the ablation sweep and
its report, and diagnostics (docs/shapes-world.md)."""
