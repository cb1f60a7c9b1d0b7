"""Model names -> loadable folders: hub ids pass through, "tiny/..." names are built locally."""

from edit_rl.models.registry import TINY_MODELS, build_tiny_model, resolve_model, tiny_models_dir

__all__ = ["TINY_MODELS", "build_tiny_model", "resolve_model", "tiny_models_dir"]
