"""FLUX.2-klein as an `Editor`: the conditioning and transformer call of diffusers' pipeline.

Follows diffusers ``Flux2KleinPipeline`` (``_get_qwen3_prompt_embeds``, ``_encode_vae_image``,
``prepare_latents``, ``prepare_image_latents``, ``__call__``; diffusers 0.42) with two deliberate
differences: the output size is always ``cfg.resolution`` (the pipeline takes the reference's size,
after shrinking references above 1024^2), and the sampling loop is ours (edit_rl.flow).

Layout: the VAE latent (B, 32, h, w) is cut into 2x2 patches (B, 128, h/2, w/2), normalised by the
VAE's BatchNorm running statistics, and flattened to tokens (B, (h/2)(w/2), 128). Position ids have
four axes [T, row, col, L]: target tokens T = 0, the reference's T = 10 (``_prepare_image_ids``,
scale 10), text tokens [0, 0, 0, l]. Sequence = [target tokens; reference tokens]; the prediction is
sliced back to the target. Text: the Qwen3 chat template (``enable_thinking=False``), padded to
``cfg.max_sequence_length``, hidden states of layers (9, 18, 27) concatenated per token.
Guidance: klein has no guidance embedding; the base (non-distilled) checkpoints use true CFG with
the empty prompt when ``guidance_scale > 1`` (``do_classifier_free_guidance``), the distilled ones never.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel
from torch import Tensor
from transformers import Qwen2TokenizerFast, Qwen3ForCausalLM

from edit_rl.config.schema import EditorConfig
from edit_rl.editors.base import EditCondition, Editor
from edit_rl.editors.flux_kontext import from_vae_range, to_vae_range
from edit_rl.flow.sigmas import exponential_time_shift, linear_sigmas

TEXT_ENCODER_OUT_LAYERS = (9, 18, 27)  # Flux2KleinPipeline.__call__ default
REFERENCE_TIME_ID = 10  # _prepare_image_ids: T = scale + scale * i for reference i, scale 10
NEGATIVE_PROMPT = ""  # Flux2KleinPipeline.__call__: the CFG negative prompt


@dataclasses.dataclass(frozen=True)
class Flux2KleinCondition(EditCondition):
    """prompt_embeds (B, L, 3 D_text): Qwen3 layers 9/18/27 per token; reference_latents (B, N_ref, 128):
    the patched, normalised reference; image_ids (N_target + N_ref, 4): [0, row, col, 0] of the
    target tokens then [10, row, col, 0] of the reference's."""

    prompt_embeds: Tensor
    reference_latents: Tensor
    image_ids: Tensor

    shared = ("image_ids",)


# ---- formulas ---------------------------------------------------------------------------------
def compute_empirical_mu(image_seq_len: int, num_steps: int) -> float:
    """FLUX.2's shift mu from the number of target tokens L and of steps n (diffusers
    ``pipelines/flux2/pipeline_flux2.py::compute_empirical_mu``):
    for L > 4300 mu = a2 L + b2; else mu is linear in n through (n = 10, a1 L + b1) and
    (n = 200, a2 L + b2), with a1 = 8.73809524e-05, b1 = 1.89833333, a2 = 0.00016927, b2 = 0.45666666."""
    a1, b1 = 8.73809524e-05, 1.89833333
    a2, b2 = 0.00016927, 0.45666666
    mu_200 = a2 * image_seq_len + b2
    if image_seq_len > 4300:
        return mu_200
    mu_10 = a1 * image_seq_len + b1
    slope = (mu_200 - mu_10) / 190.0
    return slope * num_steps + (mu_200 - 200.0 * slope)


def flux2_sigmas(num_steps: int, image_seq_len: int) -> Tensor:
    """exponential_time_shift(linspace(1, 1/n, n), compute_empirical_mu(L, n)) then 0 (float64):
    ``Flux2KleinPipeline.__call__`` + ``FlowMatchEulerDiscreteScheduler.set_timesteps(sigmas, mu)``."""
    shifted = exponential_time_shift(linear_sigmas(num_steps), compute_empirical_mu(image_seq_len, num_steps))
    return torch.cat([shifted, shifted.new_zeros(1)])


def patchify_latents(z: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, 4C, h/2, w/2), channel c * 4 + 2 di + dj holds pixel (2i + di, 2j + dj)
    (``Flux2KleinPipeline._patchify_latents``)."""
    b, c, h, w = z.shape
    if h % 2 or w % 2:
        raise ValueError(f"latent height and width must be even to patchify, got {h}x{w}")
    return z.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)


def unpatchify_latents(z: Tensor) -> Tensor:
    """The inverse of `patchify_latents` (``_unpatchify_latents``)."""
    b, c4, h, w = z.shape
    return z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, h * 2, w * 2)


def pack_tokens(z: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, h w, C), row-major (``_pack_latents``)."""
    b, c, h, w = z.shape
    return z.reshape(b, c, h * w).permute(0, 2, 1)


def unpack_tokens(tokens: Tensor, height: int, width: int) -> Tensor:
    """(B, h w, C) -> (B, C, h, w), the inverse of `pack_tokens` (``_unpack_latents_with_ids`` for
    row-major ids)."""
    b, n, c = tokens.shape
    if n != height * width:
        raise ValueError(f"cannot unpack {n} tokens into a {height}x{width} grid")
    return tokens.permute(0, 2, 1).reshape(b, c, height, width)


def batch_norm_normalize(z: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    """z_norm = (z - mean) / sqrt(var + eps) per channel, the VAE BatchNorm's running statistics
    (``Flux2KleinPipeline._encode_vae_image``)."""
    return (z - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + eps)


def batch_norm_denormalize(z_norm: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    """z = z_norm sqrt(var + eps) + mean, the inverse of `batch_norm_normalize` (before VAE decode)."""
    return z_norm * torch.sqrt(var.view(1, -1, 1, 1) + eps) + mean.view(1, -1, 1, 1)


def position_ids(rows: int, cols: int, time: int) -> Tensor:
    """(rows * cols, 4) int64 ids [time, row, col, 0] in row-major order (``_prepare_latent_ids`` with
    time 0, ``_prepare_image_ids`` with time 10 for the first reference)."""
    return torch.cartesian_prod(torch.tensor([time]), torch.arange(rows), torch.arange(cols), torch.tensor([0]))


def text_position_ids(length: int) -> Tensor:
    """(L, 4) int64 ids [0, 0, 0, l] (``_prepare_text_ids``)."""
    return torch.cartesian_prod(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), torch.arange(length))


def classifier_free_guidance(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """v = v_uncond + w (v_cond - v_uncond) (``Flux2KleinPipeline.__call__``)."""
    return uncond + scale * (cond - uncond)


# ---- editor -----------------------------------------------------------------------------------
class Flux2KleinEditor(Editor):
    """FLUX.2-klein (base 4B / 9B, or the distilled ones): one reference image per row."""

    pipeline_class = Flux2KleinPipeline

    def __init__(self, cfg: EditorConfig, device: torch.device | str = "cpu", transformer_only: bool = False) -> None:
        path = self._load_settings(cfg, device, transformer_only)
        load = {"dtype": self.dtype}
        self.transformer = Flux2Transformer2DModel.from_pretrained(path, subfolder="transformer", **load)
        self.vae = self._component(AutoencoderKLFlux2, path, "vae", **load)
        self.text_encoder = self._component(Qwen3ForCausalLM, path, "text_encoder", **load)
        self.tokenizer = Qwen2TokenizerFast.from_pretrained(path, subfolder="tokenizer")
        self.scheduler_config = FlowMatchEulerDiscreteScheduler.from_pretrained(path, subfolder="scheduler").config
        self.is_distilled = bool(Flux2KleinPipeline.load_config(path).get("is_distilled", False))
        self._freeze(self.transformer, self.vae, self.text_encoder)
        if cfg.gradient_checkpointing:  # acts only when gradients are on (the learner)
            self.transformer.enable_gradient_checkpointing()
        self._check_model()
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if cfg.resolution % (2 * self.vae_scale_factor):
            raise ValueError(f"resolution {cfg.resolution} is not a multiple of {2 * self.vae_scale_factor}")
        self.token_grid = cfg.resolution // (2 * self.vae_scale_factor)  # rows = cols of target tokens
        self.target_ids = position_ids(self.token_grid, self.token_grid, time=0).to(self.device)
        self.text_ids = text_position_ids(cfg.max_sequence_length).to(self.device)
        self._negative_embeds: Tensor | None = None
        if transformer_only and self.do_cfg:  # velocity's CFG pass needs the empty prompt's embeddings:
            shell = self.text_encoder  # encode it once with the real text encoder, then drop that
            self.text_encoder = Qwen3ForCausalLM.from_pretrained(path, subfolder="text_encoder", **load)
            self.text_encoder.requires_grad_(False).eval().to(self.device)
            self.negative_prompt_embeds()
            self.text_encoder = shell

    def _check_model(self) -> None:
        t, c = self.transformer.config, self.scheduler_config
        if t.in_channels != 4 * self.vae.config.latent_channels:
            raise ValueError("transformer in_channels must be 4 x the VAE's latent channels (2x2 patches)")
        if t.guidance_embeds:
            raise ValueError("FLUX.2-klein has no guidance embedding; this transformer has one (FLUX.2-dev?)")
        if t.joint_attention_dim != len(TEXT_ENCODER_OUT_LAYERS) * self.text_encoder.config.hidden_size:
            raise ValueError("joint_attention_dim must be 3 x the text encoder's hidden size (layers 9, 18, 27)")
        if self.text_encoder.config.num_hidden_layers <= max(TEXT_ENCODER_OUT_LAYERS):
            raise ValueError(f"the text encoder needs more than {max(TEXT_ENCODER_OUT_LAYERS)} layers")
        if not c.use_dynamic_shifting or c.time_shift_type != "exponential" or c.shift_terminal or c.invert_sigmas \
                or c.use_karras_sigmas or c.use_exponential_sigmas or c.use_beta_sigmas:
            raise ValueError("FLUX.2's grid needs the scheduler's plain exponential dynamic shifting")

    @property
    def do_cfg(self) -> bool:
        """True CFG with the empty prompt: ``guidance_scale > 1 and not is_distilled`` (the pipeline's rule)."""
        return self.cfg.guidance_scale > 1 and not self.is_distilled

    @property
    def num_target_tokens(self) -> int:
        return self.token_grid ** 2

    def default_lora_targets(self) -> list[str]:
        """Every attention projection: the double-stream blocks' image and text q/k/v/out (the Kontext
        list) plus each single-stream block's fused qkv+MLP input and its output projection, named
        per block (a bare "to_out" would also hit the double blocks' ModuleList, which peft cannot wrap;
        diffusers' ``train_dreambooth_lora_flux2_klein.py`` enumerates them the same way)."""
        singles = [f"single_transformer_blocks.{i}.attn.to_out"
                   for i in range(len(self.transformer.single_transformer_blocks))]
        return ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
                "to_qkv_mlp_proj", *singles]

    # ---- conditioning -------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """(B, max_sequence_length, 3 D_text); each distinct prompt encoded once.

        Chat template with ``enable_thinking=False``, padded to the maximum length with the attention
        mask given to Qwen3, hidden states (9, 18, 27) stacked and merged per token
        (``Flux2KleinPipeline._get_qwen3_prompt_embeds``).
        """
        unique = list(dict.fromkeys(prompts))
        rows = torch.tensor([unique.index(p) for p in prompts], device=self.device)
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                    add_generation_prompt=True, enable_thinking=False)
                 for p in unique]
        inputs = self.tokenizer(texts, return_tensors="pt", padding="max_length", truncation=True,
                                max_length=self.cfg.max_sequence_length)
        out = self.text_encoder(input_ids=inputs.input_ids.to(self.device),
                                attention_mask=inputs.attention_mask.to(self.device),
                                output_hidden_states=True, use_cache=False)
        layers = torch.stack([out.hidden_states[k] for k in TEXT_ENCODER_OUT_LAYERS], dim=1)  # (B, 3, L, D)
        b, n, length, d = layers.shape
        embeds = layers.permute(0, 2, 1, 3).reshape(b, length, n * d)
        return embeds.to(self.dtype)[rows]

    def negative_prompt_embeds(self) -> Tensor:
        """The empty prompt's embeddings (1, L, 3 D_text), computed once (CFG only)."""
        if self._negative_embeds is None:
            self._negative_embeds = self.encode_prompts([NEGATIVE_PROMPT])
        return self._negative_embeds

    @torch.no_grad()
    def encode_images(self, images: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1] -> tokens (B, (H/16)(W/16), 128): VAE posterior mode,
        `patchify_latents`, `batch_norm_normalize`, `pack_tokens` (``_encode_vae_image``)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        multiple = 2 * self.vae_scale_factor
        if images.shape[-2] % multiple or images.shape[-1] % multiple:
            raise ValueError(f"image size {tuple(images.shape[-2:])} must be a multiple of {multiple}")
        x = to_vae_range(images.to(self.device, torch.float32)).to(self.vae.dtype)
        z = patchify_latents(self.vae.encode(x).latent_dist.mode())
        bn = self.vae.bn
        z = batch_norm_normalize(z, bn.running_mean.to(z.dtype), bn.running_var.to(z.dtype),
                                 self.vae.config.batch_norm_eps)
        return pack_tokens(z).to(self.dtype)

    def condition(self, prompts: Sequence[str], reference_images: Tensor) -> Flux2KleinCondition:
        self._need_encoders("condition")
        if len(prompts) != reference_images.shape[0]:
            raise ValueError(f"{len(prompts)} prompts for {reference_images.shape[0]} reference images")
        reference = self.encode_images(reference_images)
        rows, cols = (s // (2 * self.vae_scale_factor) for s in reference_images.shape[-2:])
        reference_ids = position_ids(rows, cols, time=REFERENCE_TIME_ID).to(self.device)
        return Flux2KleinCondition(prompt_embeds=self.encode_prompts(prompts), reference_latents=reference,
                                   image_ids=torch.cat([self.target_ids, reference_ids], dim=0))

    # ---- sampling -----------------------------------------------------------------------------
    def initial_noise(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Gaussian drawn in the patched shape (B, 128, h/2, w/2) as the pipeline does
        (``prepare_latents``: ``randn_tensor``), then `pack_tokens`; float32."""
        shape = (batch_size, self.transformer.config.in_channels, self.token_grid, self.token_grid)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32,
                            device=generator.device if generator is not None else self.device)
        return pack_tokens(noise.to(self.device))

    def sigmas(self, num_steps: int) -> Tensor:
        """`flux2_sigmas`: mu from the target token count and the number of steps."""
        return flux2_sigmas(num_steps, self.num_target_tokens)

    def _transformer(self, hidden: Tensor, timestep: Tensor, prompt_embeds: Tensor, image_ids: Tensor) -> Tensor:
        return self.transformer(hidden_states=hidden, timestep=timestep, guidance=None,
                                encoder_hidden_states=prompt_embeds, txt_ids=self.text_ids, img_ids=image_ids,
                                return_dict=False)[0]

    def velocity(self, latents: Tensor, sigma: Tensor, cond: EditCondition) -> Tensor:
        """v = transformer([x; reference], t = sigma, Qwen3 embeds, ids)[:, :N_target], and with CFG
        `classifier_free_guidance` against the empty prompt (two passes, as the pipeline).
        The transformer scales t by 1000 inside."""
        if not isinstance(cond, Flux2KleinCondition):
            raise TypeError(f"expected a Flux2KleinCondition, got {type(cond).__name__}")
        batch, tokens = latents.shape[:2]
        if tokens != self.num_target_tokens:
            raise ValueError(f"latents have {tokens} tokens, the resolution needs {self.num_target_tokens}")
        hidden = torch.cat([latents.to(self.dtype), cond.reference_latents], dim=1)
        timestep = sigma.to(self.device, self.dtype).expand(batch)
        v = self._transformer(hidden, timestep, cond.prompt_embeds, cond.image_ids)[:, :tokens]
        if self.do_cfg:
            negative = self.negative_prompt_embeds().expand(batch, -1, -1)
            v_uncond = self._transformer(hidden, timestep, negative, cond.image_ids)[:, :tokens]
            v = classifier_free_guidance(v, v_uncond, self.cfg.guidance_scale)
        return v.to(latents.dtype)

    def vae_latents(self, latents: Tensor) -> Tensor:
        """Tokens -> the VAE's latent (B, 32, h, w): `unpack_tokens`, `batch_norm_denormalize`,
        `unpatchify_latents` (what the pipeline returns for ``output_type="latent"``)."""
        z = unpack_tokens(latents.to(self.device, self.vae.dtype), self.token_grid, self.token_grid)
        bn = self.vae.bn
        z = batch_norm_denormalize(z, bn.running_mean.to(z.dtype), bn.running_var.to(z.dtype),
                                   self.vae.config.batch_norm_eps)
        return unpatchify_latents(z)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        self._need_encoders("decode")
        decoded = self.vae.decode(self.vae_latents(latents), return_dict=False)[0]
        return from_vae_range(decoded.float())

