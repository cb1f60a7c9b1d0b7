"""Qwen-Image-Edit as an `Editor`: the conditioning and transformer call of diffusers' pipeline.

Follows diffusers ``QwenImageEditPipeline`` (``_get_qwen_prompt_embeds``, ``_encode_vae_image``,
``prepare_latents``, ``__call__``; diffusers 0.42) with deliberate differences:
- sizes are explicit: the output is ``cfg.resolution`` and the reference is used at its own size for
  both the VAE and the Qwen2.5-VL prompt encoder (the pipeline silently resizes the reference to
  ~1024^2 for both, ``calculate_dimensions(1024 * 1024, ratio)``);
- the prompt-template drop index is measured on the loaded tokenizer (the length of the template up
  to the image, system prompt through ``<|im_start|>user\\n``) instead of the pipeline's hard-coded
  64, which holds for the real tokenizer only;
- the sampling loop is ours (edit_rl.flow).

Layout: VAE latents (B, 16, 1, h, w) normalised per channel with the VAE's latents_mean / latents_std,
packed into 2x2-patch tokens (B, (h/2)(w/2), 64) (the FLUX.1 packing). Sequence = [target tokens;
reference tokens]; positions come from ``img_shapes`` = [(1, h/2, w/2), (1, H_ref/16, W_ref/16)]:
the transformer's rope gives the reference frame index 1 (and centred row / column indices); text
positions follow the largest image extent. The prediction is sliced back to the target tokens.
Guidance: no guidance embedding; with ``cfg.guidance_scale > 1`` true CFG against the negative
prompt " " with the pipeline's norm rescale (`true_cfg_with_norm_rescale`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImageEditPipeline,
    QwenImageTransformer2DModel,
)
from torch import Tensor
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer, Qwen2VLProcessor

from edit_rl.config.schema import EditorConfig
from edit_rl.editors.base import EditCondition, Editor
from edit_rl.editors.flux_kontext import from_vae_range, to_vae_range
from edit_rl.editors.flux_latents import pack_latents, unpack_latents
from edit_rl.editors.images import tensor_to_pil
from edit_rl.flow.sigmas import calculate_shift, exponential_time_shift, linear_sigmas

# QwenImageEditPipeline.prompt_template_encode (diffusers 0.42).
PROMPT_TEMPLATE = (
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the image. Generate a new "
    "image that meets the user's requirements while maintaining consistency with the original input where "
    "appropriate.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{}<|im_end|>\n"
    "<|im_start|>assistant\n"
)
NEGATIVE_PROMPT = " "  # the negative prompt of the pipeline's documented true-CFG usage


def _pad_to(x: Tensor, length: int) -> Tensor:
    """Zero-pad dim 1 of (B, L, ...) to ``length``."""
    pad = [0, 0] * (x.ndim - 2) + [0, length - x.shape[1]]
    return F.pad(x, pad)


@dataclasses.dataclass(frozen=True)
class QwenImageEditCondition(EditCondition):
    """prompt_embeds (B, L, D): Qwen2.5-VL last hidden states of [reference image; instruction] after
    the template's system part, zero-padded; prompt_mask (B, L) int64 (1 = token); the same two for
    the negative prompt (L = 0 when there is no CFG); reference_latents (B, N_ref, 64): packed,
    normalised reference; image_shapes (2, 3) int64: [[1, h/2, w/2] target, [1, H/16, W/16] reference]."""

    prompt_embeds: Tensor
    prompt_mask: Tensor
    negative_prompt_embeds: Tensor
    negative_prompt_mask: Tensor
    reference_latents: Tensor
    image_shapes: Tensor

    shared = ("image_shapes",)

    @classmethod
    def cat(cls, conditions: Sequence[QwenImageEditCondition]) -> QwenImageEditCondition:
        """As `EditCondition.cat`, after zero-padding the prompts to a common length (masked out)."""
        if not conditions:
            raise ValueError("cannot concatenate an empty list of conditions")
        length = max(c.prompt_embeds.shape[1] for c in conditions)
        negative_length = max(c.negative_prompt_embeds.shape[1] for c in conditions)
        padded = [dataclasses.replace(
            c, prompt_embeds=_pad_to(c.prompt_embeds, length), prompt_mask=_pad_to(c.prompt_mask, length),
            negative_prompt_embeds=_pad_to(c.negative_prompt_embeds, negative_length),
            negative_prompt_mask=_pad_to(c.negative_prompt_mask, negative_length)) for c in conditions]
        return super().cat(padded)


# ---- formulas ---------------------------------------------------------------------------------
def stretch_shift_to_terminal(sigmas: Tensor, shift_terminal: float) -> Tensor:
    """sigma' = 1 - (1 - sigma) / s with s = (1 - sigma_last) / (1 - shift_terminal): the last sigma
    becomes shift_terminal, 1 stays 1 (``FlowMatchEulerDiscreteScheduler.stretch_shift_to_terminal``).
    Undefined for a single step (sigma_last = 1)."""
    one_minus = 1.0 - sigmas
    if one_minus[-1] == 0:
        raise ValueError("the terminal stretch needs at least 2 steps (the last sigma is 1)")
    return 1.0 - one_minus / (one_minus[-1] / (1.0 - shift_terminal))


def qwen_image_sigmas(num_steps: int, image_seq_len: int, base_seq_len: int, max_seq_len: int,
                      base_shift: float, max_shift: float, shift_terminal: float | None) -> Tensor:
    """Qwen-Image's grid (float64, num_steps + 1 values ending in 0): linspace(1, 1/n, n), the
    exponential shift with mu = `calculate_shift` (L = target tokens; Qwen-Image: 256 -> 0.5,
    8192 -> 0.9), then `stretch_shift_to_terminal` (0.02) (``QwenImageEditPipeline.__call__`` +
    ``FlowMatchEulerDiscreteScheduler.set_timesteps(sigmas, mu)``)."""
    mu = calculate_shift(image_seq_len, base_seq_len, max_seq_len, base_shift, max_shift)
    sigmas = exponential_time_shift(linear_sigmas(num_steps), mu)
    if shift_terminal:
        sigmas = stretch_shift_to_terminal(sigmas, shift_terminal)
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def true_cfg_with_norm_rescale(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """v = c (||v_cond|| / ||c||) with c = v_uncond + w (v_cond - v_uncond), norms per token over
    channels (``QwenImageEditPipeline.__call__``, ``do_true_cfg``)."""
    combined = uncond + scale * (cond - uncond)
    return combined * (torch.norm(cond, dim=-1, keepdim=True) / torch.norm(combined, dim=-1, keepdim=True))


# ---- editor -----------------------------------------------------------------------------------
class QwenImageEditEditor(Editor):
    """Qwen-Image-Edit: one reference image per row, seen by both the VAE and the VL prompt encoder."""

    pipeline_class = QwenImageEditPipeline

    def __init__(self, cfg: EditorConfig, device: torch.device | str = "cpu", transformer_only: bool = False) -> None:
        path = self._load_settings(cfg, device, transformer_only)
        load = {"dtype": self.dtype}
        self.transformer = QwenImageTransformer2DModel.from_pretrained(path, subfolder="transformer", **load)
        self.vae = self._component(AutoencoderKLQwenImage, path, "vae", **load)
        self.text_encoder = self._component(Qwen2_5_VLForConditionalGeneration, path, "text_encoder", **load)
        self.tokenizer = Qwen2Tokenizer.from_pretrained(path, subfolder="tokenizer")
        self.processor = Qwen2VLProcessor.from_pretrained(path, subfolder="processor")
        self.scheduler_config = FlowMatchEulerDiscreteScheduler.from_pretrained(path, subfolder="scheduler").config
        self._freeze(self.transformer, self.vae, self.text_encoder)
        if cfg.gradient_checkpointing:  # acts only when gradients are on (the learner)
            self.transformer.enable_gradient_checkpointing()
        self._check_model()
        self.vae_scale_factor = 2 ** len(self.vae.temperal_downsample)
        if cfg.resolution % (2 * self.vae_scale_factor):
            raise ValueError(f"resolution {cfg.resolution} is not a multiple of {2 * self.vae_scale_factor}")
        self.token_grid = cfg.resolution // (2 * self.vae_scale_factor)
        self.prompt_drop_index = len(self.tokenizer(PROMPT_TEMPLATE.split("<|vision_start|>")[0]).input_ids)
        z = self.vae.config.z_dim
        self.latents_mean = torch.tensor(self.vae.config.latents_mean).view(1, z, 1, 1, 1)
        self.latents_std = torch.tensor(self.vae.config.latents_std).view(1, z, 1, 1, 1)

    def _check_model(self) -> None:
        t, c = self.transformer.config, self.scheduler_config
        if t.in_channels != 4 * self.vae.config.z_dim or t.out_channels != self.vae.config.z_dim:
            raise ValueError("transformer in_channels / out_channels must be 4 x / 1 x the VAE's z_dim (2x2 packing)")
        if t.guidance_embeds or t.use_additional_t_cond:
            raise ValueError("guidance-embedded or additional-t-conditioned Qwen-Image variants are not supported")
        if t.joint_attention_dim != self.text_encoder.config.text_config.hidden_size:
            raise ValueError("joint_attention_dim must equal the text encoder's hidden size")
        if not c.use_dynamic_shifting or c.time_shift_type != "exponential" or c.invert_sigmas \
                or c.use_karras_sigmas or c.use_exponential_sigmas or c.use_beta_sigmas:
            raise ValueError("Qwen-Image's grid needs the scheduler's exponential dynamic shifting")

    @property
    def do_cfg(self) -> bool:
        """True CFG (against " ") when guidance_scale > 1 (the pipeline's ``true_cfg_scale > 1``)."""
        return self.cfg.guidance_scale > 1

    @property
    def num_target_tokens(self) -> int:
        return self.token_grid ** 2

    def default_lora_targets(self) -> list[str]:
        """The attention projections of both streams (image q/k/v/out, text add_q/k/v and to_add_out),
        the same names as FLUX.1's list (flow_grpo's Qwen-Image LoRA targets)."""
        return ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]

    # ---- conditioning -------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str], images: Tensor) -> tuple[Tensor, Tensor]:
        """(embeds (B, L, D), mask (B, L) int64) for one (instruction, reference image) per row; each
        distinct pair is encoded once, the distinct pairs in one padded batch.

        Template with the image (given to the processor as 8-bit RGB, like the pipeline's PIL input),
        Qwen2.5-VL forward, last hidden state, valid tokens only, the first ``prompt_drop_index``
        dropped, zero-padded to the longest (``_get_qwen_prompt_embeds``).
        """
        firsts: list[int] = []  # row -> first row with the same prompt and image
        for i, prompt in enumerate(prompts):
            firsts.append(next(j for j in range(i + 1)
                               if prompts[j] == prompt and torch.equal(images[j], images[i])))
        unique = sorted(set(firsts))
        inputs = self.processor(text=[PROMPT_TEMPLATE.format(prompts[j]) for j in unique],
                                images=tensor_to_pil(images[unique]), padding=True, return_tensors="pt")
        out = self.text_encoder(
            input_ids=inputs["input_ids"].to(self.device), attention_mask=inputs["attention_mask"].to(self.device),
            pixel_values=inputs["pixel_values"].to(self.device, self.text_encoder.dtype),
            image_grid_thw=inputs["image_grid_thw"].to(self.device), output_hidden_states=True)
        hidden, valid = out.hidden_states[-1], inputs["attention_mask"].to(self.device).bool()
        kept = [h[m][self.prompt_drop_index:] for h, m in zip(hidden, valid)]
        length = max(k.shape[0] for k in kept)
        embeds = torch.stack([_pad_to(k[None], length)[0] for k in kept]).to(self.dtype)
        mask = torch.stack([_pad_to(torch.ones(1, k.shape[0], dtype=torch.long, device=self.device), length)[0]
                            for k in kept])
        rows = torch.tensor([unique.index(j) for j in firsts], device=self.device)
        return embeds[rows], mask[rows]

    @torch.no_grad()
    def encode_images(self, images: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1] -> packed tokens (B, (H/16)(W/16), 64): one-frame video
        (B, 3, 1, H, W), VAE posterior mode, (z - latents_mean) / latents_std, 2x2 packing
        (``_encode_vae_image`` / ``prepare_latents``)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        multiple = 2 * self.vae_scale_factor
        if images.shape[-2] % multiple or images.shape[-1] % multiple:
            raise ValueError(f"image size {tuple(images.shape[-2:])} must be a multiple of {multiple}")
        x = to_vae_range(images.to(self.device, torch.float32)).to(self.vae.dtype).unsqueeze(2)
        z = self.vae.encode(x).latent_dist.mode()
        z = (z - self.latents_mean.to(z)) / self.latents_std.to(z)
        return pack_latents(z[:, :, 0]).to(self.dtype)

    def condition(self, prompts: Sequence[str], reference_images: Tensor) -> QwenImageEditCondition:
        self._need_encoders("condition")
        if len(prompts) != reference_images.shape[0]:
            raise ValueError(f"{len(prompts)} prompts for {reference_images.shape[0]} reference images")
        reference = self.encode_images(reference_images)
        embeds, mask = self.encode_prompts(prompts, reference_images)
        if self.do_cfg:
            negative, negative_mask = self.encode_prompts([NEGATIVE_PROMPT] * len(prompts), reference_images)
        else:
            negative, negative_mask = embeds[:, :0], mask[:, :0]
        ref_rows, ref_cols = (s // (2 * self.vae_scale_factor) for s in reference_images.shape[-2:])
        shapes = torch.tensor([[1, self.token_grid, self.token_grid], [1, ref_rows, ref_cols]], device=self.device)
        return QwenImageEditCondition(prompt_embeds=embeds, prompt_mask=mask, negative_prompt_embeds=negative,
                                      negative_prompt_mask=negative_mask, reference_latents=reference,
                                      image_shapes=shapes)

    # ---- sampling -----------------------------------------------------------------------------
    def initial_noise(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Gaussian (B, 1, 16, h, w) drawn as the pipeline does (``randn_tensor``), then packed; float32."""
        shape = (batch_size, self.vae.config.z_dim, self.token_grid * 2, self.token_grid * 2)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32,
                            device=generator.device if generator is not None else self.device)
        return pack_latents(noise.to(self.device))

    def sigmas(self, num_steps: int) -> Tensor:
        """`qwen_image_sigmas` for the target token count and the scheduler's shift settings."""
        c = self.scheduler_config
        return qwen_image_sigmas(num_steps, self.num_target_tokens, c.base_image_seq_len, c.max_image_seq_len,
                                 c.base_shift, c.max_shift, c.shift_terminal)

    def _transformer(self, hidden: Tensor, timestep: Tensor, embeds: Tensor, mask: Tensor,
                     image_shapes: Tensor) -> Tensor:
        shapes = [[tuple(s) for s in image_shapes.tolist()]] * hidden.shape[0]
        return self.transformer(hidden_states=hidden, timestep=timestep, guidance=None,
                                encoder_hidden_states_mask=None if bool(mask.all()) else mask,
                                encoder_hidden_states=embeds, img_shapes=shapes, return_dict=False)[0]

    def velocity(self, latents: Tensor, sigma: Tensor, cond: EditCondition) -> Tensor:
        """v = transformer([x; reference], t = sigma, VL embeds (mask only if padded), img_shapes)[:, :N_target];
        with CFG, `true_cfg_with_norm_rescale` against the negative prompt (two passes, as the pipeline)."""
        if not isinstance(cond, QwenImageEditCondition):
            raise TypeError(f"expected a QwenImageEditCondition, got {type(cond).__name__}")
        batch, tokens = latents.shape[:2]
        if tokens != self.num_target_tokens:
            raise ValueError(f"latents have {tokens} tokens, the resolution needs {self.num_target_tokens}")
        hidden = torch.cat([latents.to(self.dtype), cond.reference_latents], dim=1)
        timestep = sigma.to(self.device, self.dtype).expand(batch)
        v = self._transformer(hidden, timestep, cond.prompt_embeds, cond.prompt_mask, cond.image_shapes)[:, :tokens]
        if self.do_cfg:
            if cond.negative_prompt_embeds.shape[1] == 0:
                raise ValueError("guidance_scale > 1 needs a condition with negative prompt embeddings")
            v_uncond = self._transformer(hidden, timestep, cond.negative_prompt_embeds, cond.negative_prompt_mask,
                                         cond.image_shapes)[:, :tokens]
            v = true_cfg_with_norm_rescale(v, v_uncond, self.cfg.guidance_scale)
        return v.to(latents.dtype)

    def vae_latents(self, latents: Tensor) -> Tensor:
        """Tokens -> the VAE's latent (B, 16, 1, h, w): unpack, z * latents_std + latents_mean."""
        z = unpack_latents(latents.to(self.device, self.vae.dtype), 2 * self.token_grid, 2 * self.token_grid)
        return z.unsqueeze(2) * self.latents_std.to(z) + self.latents_mean.to(z)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        self._need_encoders("decode")
        decoded = self.vae.decode(self.vae_latents(latents), return_dict=False)[0][:, :, 0]
        return from_vae_range(decoded.float())
