"""Typed configuration: dataclass schema, YAML presets, dotted overrides, validation."""
from edit_rl.config.loader import load_config, parse_override, save_config
from edit_rl.config.schema import Config, ConfigError

__all__ = ["Config", "ConfigError", "load_config", "parse_override", "save_config"]
