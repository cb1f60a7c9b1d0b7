"""FLOPs and activation bytes of the parts around the transformer: VAE (traced on fake tensors),
text encoders, the judge and the consistency models (dense estimate 2 x parameters per token)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from edit_rl.planning.architectures import VAE_OF, build_on, parameter_count
from edit_rl.planning.fake_trace import trace_call


@dataclass(frozen=True)
class VAECosts:
    """One image at ``resolution``: encode (the reference) and decode (the edit), no grad."""

    encode_flops: int
    decode_flops: int
    peak_bytes: int


@functools.lru_cache(maxsize=None)
def vae_costs(family: str, resolution: int, dtype: torch.dtype = torch.bfloat16) -> VAECosts:
    name = VAE_OF[family]
    with FakeTensorMode():
        vae = build_on(name, "cpu", dtype)
        vae.requires_grad_(False)
        frames = (1,) if family == "qwen_image_edit" else ()  # Qwen-Image's VAE is a video VAE
        image = torch.randn(1, 3, *frames, resolution, resolution, dtype=dtype)
        latent = torch.randn(1, vae.config.get("latent_channels", vae.config.get("z_dim")), *frames,
                             resolution // 8, resolution // 8, dtype=dtype)
        with torch.no_grad():
            encode = trace_call(lambda: vae.encode(image))
            decode = trace_call(lambda: vae.decode(latent))
    return VAECosts(encode.flops, decode.flops, max(encode.peak_bytes, decode.peak_bytes))


def dense_forward_flops(component: str, tokens: int) -> int:
    """F = 2 N T: a dense forward of N parameters over T tokens (Kaplan et al. 2020, arXiv:2001.08361
    section 2.1), attention's sequence term left out."""
    return 2 * parameter_count(component) * tokens
