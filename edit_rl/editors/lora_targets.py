"""Which transformer modules get LoRA, per editor family.

Module names differ per transformer: FLUX.1 and Qwen-Image name their attention projections
to_q / to_k / to_v / to_out.0 / add_{q,k,v}_proj / to_add_out; FLUX.2's single-stream blocks fuse
q, k, v and the MLP input into ``to_qkv_mlp_proj`` with a plain ``to_out``. An editor may define
``default_lora_targets()``; `lora_config_for` resolves the configured ``lora.target_modules``
against the loaded transformer:

- the schema default (FLUX.1-Kontext's list, i.e. "not set") -> the family's defaults;
- names none of which exist in this transformer (a preset written for another family) -> the
  family's defaults;
- names that all exist -> kept as configured;
- some exist, some not -> ValueError naming the missing ones (a typo, not another family).

Use it where LoRA is added: ``add_lora(editor.transformer, lora_config_for(editor, cfg.lora))``.
"""

from __future__ import annotations

import dataclasses
import logging

from torch import nn

from edit_rl.config.schema import LoRAConfig
from edit_rl.editors.base import Editor

logger = logging.getLogger(__name__)


def matching_modules(transformer: nn.Module, target: str) -> list[str]:
    """Names of the nn.Linear modules that peft's ``target_modules`` entry ``target`` selects: the
    name itself or any name ending in "." + target."""
    return [name for name, module in transformer.named_modules()
            if isinstance(module, nn.Linear) and (name == target or name.endswith("." + target))]


def family_lora_targets(editor: Editor) -> list[str]:
    """The editor's ``default_lora_targets()``, or the schema default (FLUX.1's names) if it has none."""
    defaults = getattr(editor, "default_lora_targets", None)
    return list(defaults()) if callable(defaults) else list(LoRAConfig().target_modules)


def lora_config_for(editor: Editor, cfg: LoRAConfig) -> LoRAConfig:
    """``cfg`` with target_modules resolved for ``editor``'s transformer (rules in the module docstring)."""
    configured = list(cfg.target_modules)
    missing = [t for t in configured if not matching_modules(editor.transformer, t)]
    if configured == list(LoRAConfig().target_modules) or len(missing) == len(configured):
        targets = family_lora_targets(editor)
        if targets != configured:
            logger.info("LoRA targets %s -> %s's defaults %s", configured, type(editor).__name__, targets)
    elif missing:
        raise ValueError(f"lora.target_modules {missing} match no linear layer of {type(editor.transformer).__name__}")
    else:
        targets = configured
    unmatched = [t for t in targets if not matching_modules(editor.transformer, t)]
    if unmatched:
        raise ValueError(f"default LoRA targets {unmatched} match no linear layer of "
                         f"{type(editor.transformer).__name__}")
    return dataclasses.replace(cfg, target_modules=targets)
