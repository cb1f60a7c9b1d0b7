"""Entrypoints (`ray job submit` targets) and their YAML presets in jobs/configs/."""
