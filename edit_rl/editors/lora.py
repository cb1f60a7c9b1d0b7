"""LoRA on an editor's transformer (peft): the trained "default" adapter and the rollout "old" one.

DiffusionNFT (NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py``; Edit-R1 ``train_nft_kontext.py``)
keeps two adapters on one frozen base: "default" (theta, trained) and "old" (rollouts and v_old,
updated by old <- d old + (1 - d) theta after each epoch); the reference velocity is the base with
adapters disabled. peft's adapter switching also flips ``requires_grad``, so every switch here
restores the invariant: exactly the "default" adapter's LoRA parameters are trainable.
Trained adapters are saved in diffusers' LoRA format with the family's pipeline class
(``FluxKontextPipeline.save_lora_weights``), loadable by its ``load_lora_weights``, and read back
with their rank / alpha / targets by `read_lora_weights` (the evaluation job).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file
import torch
from torch import Tensor, nn

from edit_rl.config.schema import LoRAConfig
from edit_rl.editors.base import Editor
from edit_rl.objectives.old_policy import soft_update_

DEFAULT_ADAPTER = "default"
OLD_ADAPTER = "old"


def peft_lora_config(cfg: LoRAConfig) -> LoraConfig:
    """peft config from ours; Gaussian init of A (B = 0, so a new adapter starts as the base model),
    as DiffusionNFT / Flow-GRPO (``init_lora_weights="gaussian"``)."""
    return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                      target_modules=list(cfg.target_modules), init_lora_weights="gaussian")


def adapter_parameters(transformer: nn.Module, adapter: str) -> list[tuple[str, nn.Parameter]]:
    """One adapter's LoRA parameters, in module order, named without the adapter name
    (so the "default" and "old" lists pair up index by index)."""
    params: list[tuple[str, nn.Parameter]] = []
    for module_name, module in transformer.named_modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        for layer_name in module.adapter_layer_names:
            layers = getattr(module, layer_name)
            if adapter in layers:
                params += [(f"{module_name}.{layer_name}.{n}", p) for n, p in layers[adapter].named_parameters()]
    return params


def _freeze_all_but_default(transformer: nn.Module) -> None:
    """requires_grad = True exactly on the "default" adapter's LoRA parameters."""
    for p in transformer.parameters():
        p.requires_grad_(False)
    for _, p in adapter_parameters(transformer, DEFAULT_ADAPTER):
        p.requires_grad_(True)


def add_lora(transformer: nn.Module, cfg: LoRAConfig, with_old: bool = True) -> None:
    """Freeze the base, add "default" (and "old" = a copy of "default"), keep "default" active.

    Adapter weights are float32 whatever the base dtype (diffusers ``cast_training_params``): the
    optimizer and the soft update work in full precision; peft casts activations at the boundary.
    """
    cfg.validate()
    transformer.requires_grad_(False)
    transformer.add_adapter(peft_lora_config(cfg), adapter_name=DEFAULT_ADAPTER)
    if with_old:
        with warnings.catch_warnings():  # peft warns that a second adapter joins the first: intended
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            transformer.add_adapter(peft_lora_config(cfg), adapter_name=OLD_ADAPTER)
    for adapter in (DEFAULT_ADAPTER, OLD_ADAPTER) if with_old else (DEFAULT_ADAPTER,):
        for _, p in adapter_parameters(transformer, adapter):
            p.data = p.data.float()
    if with_old:
        copy_default_to_old_(transformer)
    transformer.set_adapter(DEFAULT_ADAPTER)
    _freeze_all_but_default(transformer)


def cast_adapters_(transformer: nn.Module, dtype: torch.dtype) -> None:
    """Every adapter's LoRA weights in ``dtype`` (``lora.rollout_dtype``: rollout workers only
    sample, so they need no float32 master weights; later weight syncs are copied into this dtype)."""
    for name in transformer.peft_config:
        for _, p in adapter_parameters(transformer, name):
            p.data = p.data.to(dtype)


def trainable_parameters(transformer: nn.Module) -> list[nn.Parameter]:
    """The parameters to optimise: the "default" adapter's LoRA weights."""
    return [p for _, p in adapter_parameters(transformer, DEFAULT_ADAPTER)]


@contextmanager
def active_adapter(transformer: nn.Module, adapter: str) -> Iterator[None]:
    """Run with ``adapter`` active (e.g. "old" for rollouts and v_old); back to "default" after."""
    transformer.set_adapter(adapter)
    try:
        yield
    finally:
        transformer.set_adapter(DEFAULT_ADAPTER)
        _freeze_all_but_default(transformer)


@contextmanager
def adapters_disabled(transformer: nn.Module) -> Iterator[None]:
    """Run the base model alone (the reference policy of the KL term); adapters back on after."""
    transformer.disable_adapters()
    try:
        yield
    finally:
        transformer.enable_adapters()
        _freeze_all_but_default(transformer)


def soft_update_old_(transformer: nn.Module, decay: float) -> None:
    """old <- decay * old + (1 - decay) * default over the LoRA parameters (`soft_update_`;
    DiffusionNFT ``train_nft_sd3.py`` end of epoch, decay from `old_policy_decay`)."""
    old = adapter_parameters(transformer, OLD_ADAPTER)
    new = adapter_parameters(transformer, DEFAULT_ADAPTER)
    if [n for n, _ in old] != [n for n, _ in new]:
        raise ValueError("the 'old' and 'default' adapters do not have the same LoRA layers")
    soft_update_([p for _, p in old], [p for _, p in new], decay)


def copy_default_to_old_(transformer: nn.Module) -> None:
    """old <- default (the soft update with decay 0)."""
    soft_update_old_(transformer, 0.0)


def set_gradient_checkpointing(transformer: nn.Module, enabled: bool) -> None:
    """Recompute block activations in backward (diffusers ``enable_gradient_checkpointing``)."""
    if enabled:
        transformer.enable_gradient_checkpointing()
    else:
        transformer.disable_gradient_checkpointing()


def adapter_state_dict(transformer: nn.Module, adapter: str = DEFAULT_ADAPTER) -> dict[str, Tensor]:
    """peft-format LoRA weights of one adapter (keys without the adapter name), detached copies."""
    state = get_peft_model_state_dict(transformer, adapter_name=adapter)
    return {k: v.detach().clone() for k, v in state.items()}


def load_adapter_state_dict_(transformer: nn.Module, state: dict[str, Tensor],
                             adapter: str = DEFAULT_ADAPTER) -> None:
    """Write `adapter_state_dict` output into ``adapter`` (e.g. learner weights -> rollout worker's "old")."""
    result = set_peft_model_state_dict(transformer, state, adapter_name=adapter)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"state dict has keys the adapter lacks: {unexpected[:5]}")
    _freeze_all_but_default(transformer)


def save_lora_weights(editor: Editor, folder: str | Path, adapter: str = DEFAULT_ADAPTER) -> None:
    """Save ``adapter`` in diffusers' LoRA format (``<folder>/pytorch_lora_weights.safetensors``,
    keys ``transformer.<module>.lora_{A,B}.weight``, with its rank / alpha / targets as metadata so
    that ``pipeline.load_lora_weights(folder)`` applies the same alpha / rank scaling)."""
    transformer = editor.transformer
    metadata = transformer.peft_config[adapter].to_dict()
    editor.pipeline_class.save_lora_weights(
        str(folder),
        transformer_lora_layers=adapter_state_dict(transformer, adapter),
        transformer_lora_adapter_metadata=metadata,
    )


LORA_WEIGHTS_FILE = "pytorch_lora_weights.safetensors"
_TRANSFORMER_PREFIX = "transformer."


@dataclass(frozen=True)
class LoraWeights:
    """A saved adapter read back: peft-format weights (keys without the "transformer." prefix, as
    `adapter_state_dict` gives) and the rank / alpha / targets it was trained with."""

    state: dict[str, Tensor]
    rank: int
    alpha: int
    target_modules: list[str]

    def config(self, base: LoRAConfig) -> LoRAConfig:
        """``base`` with this adapter's rank, alpha and targets (an adapter built from it takes the weights)."""
        return dataclasses.replace(base, rank=self.rank, alpha=self.alpha, target_modules=list(self.target_modules))


def read_lora_weights(folder: str | Path) -> LoraWeights:
    """The inverse of `save_lora_weights` (and of the learner's checkpoint ``lora/`` folders): the
    transformer's LoRA tensors and, from the file's diffusers metadata, rank, alpha and targets.
    ``folder`` may also be the ``.safetensors`` file. Errors name the file and what is missing."""
    path = Path(folder)
    if path.is_dir():
        path = path / LORA_WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no LoRA weights at {path} (expected a folder written by save_lora_weights)")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    raw = metadata.get("lora_adapter_metadata")
    if raw is None:
        raise ValueError(f"{path}: no 'lora_adapter_metadata' (rank, alpha, targets); not saved by save_lora_weights?")
    config = json.loads(raw)
    try:
        rank, alpha = int(config[_TRANSFORMER_PREFIX + "r"]), int(config[_TRANSFORMER_PREFIX + "lora_alpha"])
        targets = sorted(config[_TRANSFORMER_PREFIX + "target_modules"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: LoRA metadata lacks the transformer's r / lora_alpha / target_modules "
                         f"({err})") from None
    tensors = load_file(str(path))
    other = [k for k in tensors if not k.startswith(_TRANSFORMER_PREFIX)]
    if other or not tensors:
        raise ValueError(f"{path}: expected only transformer LoRA weights, found {other[:3] or 'none'}")
    state = {k[len(_TRANSFORMER_PREFIX):]: v for k, v in tensors.items()}
    return LoraWeights(state=state, rank=rank, alpha=alpha, target_modules=targets)
