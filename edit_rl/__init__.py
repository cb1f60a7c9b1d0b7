"""edit-rl: multi-turn RL for flow-matching image editors (library; imports no Ray)."""
