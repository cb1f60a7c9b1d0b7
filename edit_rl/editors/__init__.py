"""Flow-matching image editors behind one interface (`base.Editor`), multi-turn rollouts, LoRA.

``load_editor(cfg)`` (edit_rl.editors.load) builds the family named by ``cfg.family``.
"""
