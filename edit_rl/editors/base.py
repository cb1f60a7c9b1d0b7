"""The editor interface that rollouts and learners use, whatever the model family.

A rollout needs: the condition of a batch (instructions + reference images), initial noise, the
sigma grid, the velocity for the sampler, and decoding of the final latents to images. A learner
needs the velocity (with gradients) at its own x_t, t for a stored condition, and the transformer
to put LoRA on (with the diffusers pipeline class whose LoRA file format it saves in). Latents are
whatever the family's transformer takes (FLUX: packed tokens (B, N, 64)); callers treat them as
opaque (B, ...) tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, TypeVar

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from edit_rl.config.schema import EditorConfig

C = TypeVar("C", bound="EditCondition")


@dataclasses.dataclass(frozen=True)
class EditCondition:
    """What the velocity needs besides (x_t, t), for a batch. Subclasses are dataclasses of tensors.

    Every tensor field is batched along dim 0 except those named in ``shared`` (e.g. position ids,
    identical for every row). A condition is enough to recompute a velocity later (the learner):
    it holds encoded prompts and reference latents, never raw strings or images.
    """

    shared: ClassVar[tuple[str, ...]] = ()

    def _batched_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if f.name not in self.shared]

    @property
    def batch_size(self) -> int:
        return getattr(self, self._batched_names()[0]).shape[0]

    def select(self: C, index: Tensor | slice | Sequence[int]) -> C:
        """Rows ``index`` of every batched field (shared fields kept as they are)."""
        if not isinstance(index, (Tensor, slice)):
            index = torch.as_tensor(list(index), dtype=torch.long)
        return dataclasses.replace(self, **{n: getattr(self, n)[index] for n in self._batched_names()})

    def repeat_interleave(self: C, repeats: int) -> C:
        """Each row repeated ``repeats`` times in a row (rows r, r, ..., r+1, r+1, ...)."""
        return dataclasses.replace(
            self, **{n: getattr(self, n).repeat_interleave(repeats, dim=0) for n in self._batched_names()})

    def to(self: C, device: torch.device | str) -> C:
        return dataclasses.replace(
            self, **{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})

    @classmethod
    def cat(cls: type[C], conditions: Sequence[C]) -> C:
        """Concatenate batches; shared fields must be equal across them (same sizes)."""
        if not conditions:
            raise ValueError("cannot concatenate an empty list of conditions")
        first = conditions[0]
        values: dict[str, Tensor] = {}
        for f in dataclasses.fields(first):
            parts = [getattr(c, f.name) for c in conditions]
            if f.name in cls.shared:
                if not all(p.shape == parts[0].shape and torch.equal(p, parts[0]) for p in parts[1:]):
                    raise ValueError(f"cannot concatenate conditions whose shared field {f.name!r} differs "
                                     "(different image sizes?)")
                values[f.name] = parts[0]
            else:
                values[f.name] = torch.cat(parts, dim=0)
        return dataclasses.replace(first, **values)


class Editor(ABC):
    """A flow-matching image editor: x at t = 1 is noise, the velocity v = eps - x0 drives it to x0.

    Images are float tensors (B, 3, H, W) in [0, 1]; ``resolution`` is the explicit output size
    (square), never a size the pipeline picks by itself.
    """

    transformer: nn.Module
    pipeline_class: type  # the diffusers pipeline whose save_lora_weights / load_lora_weights format we use
    resolution: int
    device: torch.device
    dtype: torch.dtype

    transformer_only: bool = False  # loaded for a learner rank: every other component on the meta device

    def _load_settings(self, cfg: "EditorConfig", device: torch.device | str, transformer_only: bool = False) -> str:
        """Validate ``cfg``, set what every editor holds (cfg, device, dtype, resolution) and
        return where its components load from (a "tiny/..." name resolved to its local build)."""
        from edit_rl.models import resolve_model

        cfg.validate()
        self.cfg = cfg
        self.transformer_only = transformer_only
        self.device = torch.device(device)
        self.dtype = getattr(torch, cfg.dtype)
        self.resolution = cfg.resolution
        return str(resolve_model(cfg.name_or_path))

    def _component(self, cls: type, path: str, subfolder: str, **load) -> nn.Module:
        """``cls.from_pretrained(path, subfolder=...)``; with ``transformer_only`` built from its
        config on the meta device instead: its config and structure for the family's checks, no
        weights read or held (a learner rank calls only the transformer)."""
        if not self.transformer_only:
            return cls.from_pretrained(path, subfolder=subfolder, **load)
        from transformers import PreTrainedModel

        with torch.device("meta"):
            if issubclass(cls, PreTrainedModel):
                return cls._from_config(cls.config_class.from_pretrained(path, subfolder=subfolder))
            return cls.from_config(cls.load_config(path, subfolder=subfolder))

    def _freeze(self, *modules: nn.Module) -> None:
        """Inference mode on ``device`` (meta-device components stay where they are)."""
        for module in modules:
            module.requires_grad_(False).eval()
            if not any(p.is_meta for p in module.parameters()):
                module.to(self.device)

    def _need_encoders(self, what: str) -> None:
        if self.transformer_only:
            raise RuntimeError(f"{type(self).__name__} was loaded transformer-only (a learner rank): {what} "
                               "needs the text encoders and the VAE; load it with transformer_only=False")

    @abstractmethod
    def condition(self, prompts: Sequence[str], reference_images: Tensor) -> EditCondition:
        """Encode one instruction and one reference image per row."""

    @abstractmethod
    def initial_noise(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """x at sigma = 1: standard Gaussian latents (float32) for ``batch_size`` outputs."""

    @abstractmethod
    def sigmas(self, num_steps: int) -> Tensor:
        """The family's rollout grid for the output resolution: num_steps + 1 values from 1 to 0 (float64)."""

    @abstractmethod
    def velocity(self, latents: Tensor, sigma: Tensor, cond: EditCondition) -> Tensor:
        """v(x, sigma | cond) in ``latents``' dtype; sigma is (B,). Differentiable (no no_grad inside)."""

    @abstractmethod
    def decode(self, latents: Tensor) -> Tensor:
        """Final latents -> images (B, 3, resolution, resolution) in [0, 1], float32."""
