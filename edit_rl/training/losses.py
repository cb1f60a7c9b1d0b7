"""One micro-batch's forward and backward for each objective, on the editor with LoRA.

Both return weighted sums of their per-sample metrics (sum_i w_i m_i, averaged over the trained
noise levels / denoising steps), which the learner adds over micro-batches and ranks and divides
by the number of real samples. ``loss_scale`` multiplies sum_i w_i loss_i before backward: the
learner passes R / n (R ranks, n real samples in the optimizer step), so that after the
backend averages gradients over the ranks every real sample weighs 1 / n
(`edit_rl.buffer.sharding`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from edit_rl.config.schema import GRPOConfig, NFTConfig, SamplerConfig
from edit_rl.editors.base import Editor
from edit_rl.editors.lora import OLD_ADAPTER, active_adapter, adapters_disabled
from edit_rl.flow.interpolation import interpolate
from edit_rl.flow.sde import SDEStepOutput, sde_step_with_logprob
from edit_rl.objectives.grpo import grpo_loss, grpo_train_step_indices
from edit_rl.objectives.nft import nft_loss, nft_timestep_indices
from edit_rl.training.turn_sample import TurnBatch

Backward = Callable[[Tensor], None]

NFT_METRICS = ("loss", "policy_loss", "kl_loss", "positive_loss", "negative_loss", "unweighted_policy",
               "kl_div", "old_deviation", "positive_weight", "negative_weight", "r_mean", "frac_positive")
GRPO_METRICS = ("loss", "policy_loss", "kl_loss", "clip_frac", "clip_frac_high", "clip_frac_low", "approx_kl",
                "ratio_mean", "kl_div", "advantage_mean")


def nft_micro_batch(editor: Editor, turns: TurnBatch, r: Tensor, weight: Tensor, generators: list[torch.Generator],
                    cfg: NFTConfig, loss_scale: float, backward: Backward) -> tuple[Tensor, bool]:
    """DiffusionNFT on each sample's own x0 and condition (MT-EditFlow eq. 25, notes section 3).

    Per sample: k = int(timestep_fraction * n) of the rollout's n noise levels with sigma >=
    ``cfg.min_sigma`` (at least the first; all n at 0) (`nft_timestep_indices`), fresh noise per
    level, x_t = (1 - t) x0 + t eps; v_theta with the "default" adapter, v_old with "old" and v_ref
    with adapters disabled (no grad; v_ref only when kl_weight > 0); `nft_loss` with r and ``weight``
    as the mask; one backward per level.
    Returns (metric sums in NFT_METRICS order, whether every loss was finite).
    """
    device = editor.device
    transformer = editor.transformer
    x0 = turns.x0.to(device, torch.float32)
    cond = turns.condition.to(device)
    r, w = r.to(device), weight.to(device)
    num_levels = max(1, int((turns.sigmas[:-1] >= cfg.min_sigma).sum()))  # the grid decreases
    levels = torch.cat([nft_timestep_indices(1, num_levels, cfg.timestep_fraction, generator=g)
                        for g in generators])  # (B, k)
    k = levels.shape[1]
    sums = torch.zeros(len(NFT_METRICS), dtype=torch.float64)
    finite = True
    for j in range(k):
        t = turns.sigmas[levels[:, j]].to(device, torch.float32)
        noise = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in generators]).to(device)
        x_t = interpolate(x0, noise, t)
        with torch.no_grad():
            with active_adapter(transformer, OLD_ADAPTER):
                v_old = editor.velocity(x_t, t, cond)
            v_ref = None
            if cfg.kl_weight > 0:
                with adapters_disabled(transformer):
                    v_ref = editor.velocity(x_t, t, cond)
        v_theta = editor.velocity(x_t, t, cond)
        out = nft_loss(v_theta, v_old, x_t, x0, t, r, beta=cfg.beta, adv_clip_max=cfg.adv_clip_max,
                       v_ref=v_ref, kl_weight=cfg.kl_weight, mask=w)
        share = float(w.sum()) / k
        backward(out.total * (share * loss_scale))
        d = out.diagnostics
        values = (out.total, out.policy, out.kl, d.positive_loss, d.negative_loss, d.unweighted_policy, d.kl_div,
                  d.old_deviation, d.positive_weight, d.negative_weight, d.r_mean, d.frac_positive)
        sums += torch.stack([v.detach().double().cpu() for v in values]) * share
        finite = finite and bool(torch.isfinite(out.total.detach()))
    return sums, finite


def grpo_micro_batch(editor: Editor, turns: TurnBatch, advantage: Tensor, weight: Tensor, cfg: GRPOConfig,
                     sampler: SamplerConfig, loss_scale: float, backward: Backward) -> tuple[Tensor, bool]:
    """Flow-GRPO on the recorded SDE steps (MT-EditFlow eqs. 20-22, notes section 4).

    Trains the first int(timestep_fraction * K) of the K recorded SDE steps
    (`grpo_train_step_indices`); per step the log-prob of the recorded next latent under the
    "default" adapter (`sde_step_with_logprob` with ``prev_sample``), the reference mean with
    adapters disabled (no grad, when kl_beta > 0), and `grpo_loss` with the broadcast advantage
    and ``weight`` as the mask; one backward per step.
    Returns (metric sums in GRPO_METRICS order, whether every loss was finite).
    """
    if turns.log_probs is None or turns.latents is None or turns.next_latents is None or turns.sde_steps is None:
        raise ValueError("GRPO needs turn samples with recorded SDE steps (rollouts with sampler.method='sde')")
    device = editor.device
    transformer = editor.transformer
    cond = turns.condition.to(device)
    adv, w = advantage.to(device), weight.to(device)
    sigmas = turns.sigmas
    sigma_max = float(sigmas[1])
    positions = grpo_train_step_indices(turns.log_probs.shape[1], cfg.timestep_fraction)
    sums = torch.zeros(len(GRPO_METRICS), dtype=torch.float64)
    finite = True
    for pos in positions:
        j = int(turns.sde_steps[pos])
        s, s_next = float(sigmas[j]), float(sigmas[j + 1])
        x = turns.latents[:, pos].to(device, torch.float32)
        x_next = turns.next_latents[:, pos].to(device, torch.float32)
        sigma = torch.full((x.shape[0],), s, dtype=torch.float32, device=device)

        def step_of(v: Tensor) -> SDEStepOutput:
            return sde_step_with_logprob(x, v, s, s_next, sigma_max, sampler.noise_level, prev_sample=x_next,
                                         kind=sampler.sde_kind)

        new = step_of(editor.velocity(x, sigma, cond))
        kl: dict[str, Any] = {}
        if cfg.kl_beta > 0:
            with torch.no_grad(), adapters_disabled(transformer):
                ref_mean = step_of(editor.velocity(x, sigma, cond)).mean
            kl = dict(mean=new.mean, ref_mean=ref_mean, std=new.std, kl_beta=cfg.kl_beta)
        out = grpo_loss(new.log_prob, turns.log_probs[:, pos].to(device), adv, clip_range=cfg.clip_range,
                        adv_clip_max=cfg.adv_clip_max, mask=w, **kl)
        share = float(w.sum()) / len(positions)
        backward(out.total * (share * loss_scale))
        d = out.diagnostics
        values = (out.total, out.policy, out.kl, d.clip_frac, d.clip_frac_high, d.clip_frac_low, d.approx_kl,
                  d.ratio_mean, d.kl_div, d.advantage_mean)
        sums += torch.stack([v.detach().double().cpu() for v in values]) * share
        finite = finite and bool(torch.isfinite(out.total.detach()))
    return sums, finite
