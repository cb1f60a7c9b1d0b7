"""The benchmark suite: every figure is a ratio of two things measured side by side in one
run. ``python -m benchmarks.run_all`` runs them all; each ``benchmarks/<name>.py`` runs alone too."""
