"""FLUX.1-Kontext-dev as an `Editor`: the conditioning and transformer call of diffusers' pipeline.

Follows diffusers ``FluxKontextPipeline`` (``encode_prompt``, ``prepare_latents``, ``__call__``)
with two deliberate differences: the output size is always ``cfg.resolution`` (the pipeline's
``max_area=1024**2`` and ``_auto_resize`` silently re-size to ~1024^2), and the sampling loop is
ours (edit_rl.flow). Components are loaded with the diffusers / transformers model classes from
``resolve_model(cfg.name_or_path)``: a hub id on a cluster, a local tiny build here, same calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
from torch import Tensor
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from edit_rl.config.schema import EditorConfig
from edit_rl.editors.base import EditCondition, Editor
from edit_rl.editors.flux_latents import (
    denormalize_latents,
    latent_image_ids,
    normalize_latents,
    pack_latents,
    unpack_latents,
)
from edit_rl.flow.sigmas import kontext_sigmas


@dataclasses.dataclass(frozen=True)
class FluxKontextCondition(EditCondition):
    """prompt_embeds (B, L, D_t5): T5 sequence; pooled_prompt_embeds (B, D_clip): CLIP pooled output;
    reference_latents (B, N_ref, 64): the packed, normalised reference image; image_ids
    (N_target + N_ref, 3): [0, row, col] of the target tokens then [1, row, col] of the reference's."""

    prompt_embeds: Tensor
    pooled_prompt_embeds: Tensor
    reference_latents: Tensor
    image_ids: Tensor

    shared = ("image_ids",)


def to_vae_range(images: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1]: x = 2 image - 1 (diffusers ``VaeImageProcessor.normalize``)."""
    return 2.0 * images - 1.0


def from_vae_range(decoded: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1]: image = clamp(x / 2 + 1/2, 0, 1) (diffusers ``VaeImageProcessor.denormalize``)."""
    return (decoded / 2 + 0.5).clamp(0, 1)


class FluxKontextEditor(Editor):
    """FLUX.1-Kontext: sequence [target tokens; reference tokens], prediction sliced to the target."""

    pipeline_class = FluxKontextPipeline

    def __init__(self, cfg: EditorConfig, device: torch.device | str = "cpu", transformer_only: bool = False) -> None:
        path = self._load_settings(cfg, device, transformer_only)
        load = {"dtype": self.dtype}
        self.transformer = FluxTransformer2DModel.from_pretrained(path, subfolder="transformer", **load)
        self.vae = self._component(AutoencoderKL, path, "vae", **load)
        self.text_encoder = self._component(CLIPTextModel, path, "text_encoder", **load)
        self.text_encoder_2 = self._component(T5EncoderModel, path, "text_encoder_2", **load)
        self.tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
        self.tokenizer_2 = T5TokenizerFast.from_pretrained(path, subfolder="tokenizer_2")
        self.scheduler_config = FlowMatchEulerDiscreteScheduler.from_pretrained(path, subfolder="scheduler").config
        self._freeze(self.transformer, self.vae, self.text_encoder, self.text_encoder_2)
        if cfg.gradient_checkpointing:  # acts only when gradients are on (the learner)
            self.transformer.enable_gradient_checkpointing()
        if self.transformer.config.in_channels != 4 * self.vae.config.latent_channels:
            raise ValueError("transformer in_channels must be 4 x the VAE's latent channels (2x2 packing)")
        if not self.scheduler_config.use_dynamic_shifting or self.scheduler_config.time_shift_type != "exponential":
            raise ValueError("FLUX Kontext's grid needs the scheduler's exponential dynamic shifting")
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if cfg.resolution % (2 * self.vae_scale_factor):
            raise ValueError(f"resolution {cfg.resolution} is not a multiple of {2 * self.vae_scale_factor}")
        self.latent_size = cfg.resolution // self.vae_scale_factor  # h = w of the (unpacked) latent
        self.target_ids = latent_image_ids(self.latent_size // 2, self.latent_size // 2, first=0).to(self.device)

    # ---- conditioning -------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(T5 sequence (B, max_sequence_length, D), CLIP pooled (B, D_clip)); each distinct prompt once.

        Both tokenizers pad to their maximum length and truncate, no attention mask, like
        ``FluxKontextPipeline._get_t5_prompt_embeds`` / ``_get_clip_prompt_embeds``.
        """
        unique = list(dict.fromkeys(prompts))
        rows = torch.tensor([unique.index(p) for p in prompts], device=self.device)
        clip_ids = self.tokenizer(unique, padding="max_length", max_length=self.tokenizer.model_max_length,
                                  truncation=True, return_tensors="pt").input_ids
        pooled = self.text_encoder(clip_ids.to(self.device), output_hidden_states=False).pooler_output
        t5_ids = self.tokenizer_2(unique, padding="max_length", max_length=self.cfg.max_sequence_length,
                                  truncation=True, return_tensors="pt").input_ids
        sequence = self.text_encoder_2(t5_ids.to(self.device), output_hidden_states=False)[0]
        return sequence.to(self.dtype)[rows], pooled.to(self.dtype)[rows]

    @torch.no_grad()
    def encode_images(self, images: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1] -> packed normalised latents (B, (H/16)(W/16), 64).

        The VAE posterior's mode (``retrieve_latents(..., sample_mode="argmax")``), then
        `normalize_latents` and `pack_latents`.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        height, width = images.shape[-2:]
        if height % (2 * self.vae_scale_factor) or width % (2 * self.vae_scale_factor):
            raise ValueError(f"image size {height}x{width} must be a multiple of {2 * self.vae_scale_factor}")
        x = to_vae_range(images.to(self.device, torch.float32)).to(self.vae.dtype)  # as the pipeline: cast after
        z = self.vae.encode(x).latent_dist.mode()
        z = normalize_latents(z, self.vae.config.shift_factor, self.vae.config.scaling_factor)
        return pack_latents(z).to(self.dtype)

    def condition(self, prompts: Sequence[str], reference_images: Tensor) -> FluxKontextCondition:
        self._need_encoders("condition")
        if len(prompts) != reference_images.shape[0]:
            raise ValueError(f"{len(prompts)} prompts for {reference_images.shape[0]} reference images")
        prompt_embeds, pooled = self.encode_prompts(prompts)
        reference = self.encode_images(reference_images)
        ref_rows, ref_cols = (s // (2 * self.vae_scale_factor) for s in reference_images.shape[-2:])
        reference_ids = latent_image_ids(ref_rows, ref_cols, first=1).to(self.device)
        return FluxKontextCondition(prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled,
                                    reference_latents=reference,
                                    image_ids=torch.cat([self.target_ids, reference_ids], dim=0))

    # ---- sampling -----------------------------------------------------------------------------
    @property
    def num_target_tokens(self) -> int:
        return (self.latent_size // 2) ** 2

    def initial_noise(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Gaussian (B, 16, h, w) drawn as the pipeline does (``randn_tensor``), then packed; float32."""
        shape = (batch_size, self.vae.config.latent_channels, self.latent_size, self.latent_size)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32,
                            device=generator.device if generator is not None else self.device)
        return pack_latents(noise.to(self.device))

    def sigmas(self, num_steps: int) -> Tensor:
        """`kontext_sigmas` with mu from the number of target tokens and the scheduler's shift settings."""
        c = self.scheduler_config
        return kontext_sigmas(num_steps, self.num_target_tokens, c.base_image_seq_len, c.max_image_seq_len,
                              c.base_shift, c.max_shift)

    def velocity(self, latents: Tensor, sigma: Tensor, cond: EditCondition) -> Tensor:
        """v = transformer([x; reference], t = sigma, guidance, CLIP pooled, T5, ids)[:, :N_target].

        The transformer scales t and guidance by 1000 inside; the guidance embedding gets
        ``cfg.guidance_scale`` (Kontext-dev is guidance-distilled: one pass, no true CFG).
        """
        if not isinstance(cond, FluxKontextCondition):
            raise TypeError(f"expected a FluxKontextCondition, got {type(cond).__name__}")
        batch, tokens = latents.shape[:2]
        if tokens != self.num_target_tokens:
            raise ValueError(f"latents have {tokens} tokens, the resolution needs {self.num_target_tokens}")
        hidden = torch.cat([latents.to(self.dtype), cond.reference_latents], dim=1)
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = torch.full((batch,), self.cfg.guidance_scale, dtype=torch.float32, device=self.device)
        text_ids = torch.zeros(cond.prompt_embeds.shape[1], 3, device=self.device)
        out = self.transformer(
            hidden_states=hidden,
            timestep=sigma.to(self.device, self.dtype).expand(batch),
            guidance=guidance,
            pooled_projections=cond.pooled_prompt_embeds,
            encoder_hidden_states=cond.prompt_embeds,
            txt_ids=text_ids,
            img_ids=cond.image_ids,
            return_dict=False,
        )[0]
        return out[:, :tokens].to(latents.dtype)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        self._need_encoders("decode")
        z = unpack_latents(latents, self.latent_size, self.latent_size)
        z = denormalize_latents(z, self.vae.config.shift_factor, self.vae.config.scaling_factor)
        decoded = self.vae.decode(z.to(self.device, self.vae.dtype), return_dict=False)[0]
        return from_vae_range(decoded.float())
