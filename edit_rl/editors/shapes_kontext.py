"""A miniature FLUX.1-Kontext editor for the synthetic shapes world: Kontext's adapter on pixels.

Everything that makes it Kontext is `FluxKontextEditor`'s own code, inherited unchanged: the
condition (target ids [0, row, col], reference ids [1, row, col]), the transformer call on the
sequence [target tokens; reference tokens] with the guidance embedding and the prediction sliced
to the target tokens (`velocity`), and the resolution-shifted sigma grid (`sigmas`). Two pieces
differ: no VAE (an image is its 4 x 4 pixel patches in [-1, 1], `edit_rl.editors.pixel_patches`;
decode = unpatchify) and a word-level text encoder (`edit_rl.editors.word_text`) in place of
CLIP + T5. The transformer is a diffusers ``FluxTransformer2DModel`` (48 input channels).

A model folder (``save_pretrained``; ``name_or_path`` "shapes/base" is the shipped checkpoint,
"tiny/shapes-kontext" an untrained build):

    transformer/    FluxTransformer2DModel (config.json, safetensors)
    text_encoder/   WordTextEncoder (config.json, safetensors)
    tokenizer/      vocab.json
    scheduler/      FlowMatchEulerDiscreteScheduler config (FLUX's dynamic shift settings)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from torch import Tensor, nn

from edit_rl.config.schema import EditorConfig
from edit_rl.editors.flux_kontext import FluxKontextEditor, from_vae_range, to_vae_range
from edit_rl.editors.flux_latents import latent_image_ids
from edit_rl.editors.pixel_patches import PATCH, SPACE_TO_DEPTH, TOKEN_CHANNELS, patchify, unpatchify
from edit_rl.editors.word_text import WordTextEncoder, WordTokenizer


class ShapesKontextEditor(FluxKontextEditor):
    """`FluxKontextEditor` in pixel space with a word-level text encoder (see the module docstring).

    ``vae_scale_factor`` is the space-to-depth factor 2, so the inherited code's token grid
    (resolution / (2 * vae_scale_factor)) is the 4 x 4 patch grid.
    """

    def __init__(self, cfg: EditorConfig, device: torch.device | str = "cpu", transformer_only: bool = False) -> None:
        path = self._load_settings(cfg, device, transformer_only)
        self.transformer = FluxTransformer2DModel.from_pretrained(path, subfolder="transformer", dtype=self.dtype)
        self.text_encoder = self._component(WordTextEncoder, path, "text_encoder", dtype=self.dtype)
        self.tokenizer = WordTokenizer.load(Path(path) / "tokenizer")
        self.scheduler_config = FlowMatchEulerDiscreteScheduler.from_pretrained(path, subfolder="scheduler").config
        self._freeze(self.transformer, self.text_encoder)
        if cfg.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        if self.transformer.config.in_channels != TOKEN_CHANNELS:
            raise ValueError(f"transformer in_channels must be {TOKEN_CHANNELS} (4 x 4 RGB pixel patches)")
        if self.transformer.config.joint_attention_dim != self.text_encoder.config.hidden_size:
            raise ValueError("transformer joint_attention_dim must equal the text encoder's hidden_size")
        if not self.scheduler_config.use_dynamic_shifting or self.scheduler_config.time_shift_type != "exponential":
            raise ValueError("FLUX Kontext's grid needs the scheduler's exponential dynamic shifting")
        if cfg.resolution % PATCH:
            raise ValueError(f"resolution {cfg.resolution} is not a multiple of {PATCH}")
        self.vae_scale_factor = SPACE_TO_DEPTH
        self.latent_size = cfg.resolution // SPACE_TO_DEPTH
        self.target_ids = latent_image_ids(cfg.resolution // PATCH, cfg.resolution // PATCH, first=0).to(self.device)

    # ---- conditioning (`condition` itself is inherited) ---------------------------------------
    def encode_prompts(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(word sequence (B, max_length, D), pooled (B, D)). Differentiable when the text encoder
        is trainable (supervised pre-training); frozen as loaded, so no graph is built otherwise."""
        ids, mask = self.tokenizer(prompts)
        sequence, pooled = self.text_encoder(ids.to(self.device), mask.to(self.device))
        return sequence.to(self.dtype), pooled.to(self.dtype)

    def encode_images(self, images: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1] -> pixel-patch tokens (B, (H/4)(W/4), 48) in [-1, 1]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        return patchify(to_vae_range(images.to(self.device, torch.float32))).to(self.dtype)

    # ---- sampling (`sigmas`, `velocity` are inherited) ----------------------------------------
    def initial_noise(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Gaussian pixels (B, 3, H, W) as patch tokens; float32."""
        shape = (batch_size, 3, self.resolution, self.resolution)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32,
                            device=generator.device if generator is not None else self.device)
        return patchify(noise.to(self.device))

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        return from_vae_range(unpatchify(latents.float(), self.resolution, self.resolution))

    # ---- persistence ----------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write the model folder of the module docstring; weights cast to ``dtype`` (default: as loaded)."""
        folder = Path(folder)
        for name, module in (("transformer", self.transformer), ("text_encoder", self.text_encoder)):
            _save_module(module, folder / name, dtype)
        self.tokenizer.save(folder / "tokenizer")
        FlowMatchEulerDiscreteScheduler.from_config(self.scheduler_config).save_pretrained(str(folder / "scheduler"))
        return folder


def _save_module(module: nn.Module, folder: Path, dtype: torch.dtype | None) -> None:
    if dtype is not None and any(p.dtype != dtype for p in module.parameters()):
        module = copy.deepcopy(module)
        for p in module.parameters():  # not module.to(dtype): diffusers warns on casting a loaded model
            p.data = p.data.to(dtype)
    module.save_pretrained(str(folder))
