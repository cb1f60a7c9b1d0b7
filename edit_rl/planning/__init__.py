"""A memory, placement and step-balance planner for the GPU presets, built from the real
architectures' configs on the meta device and fake tensors (no weights, no downloads)."""
