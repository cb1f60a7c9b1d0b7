"""A short demonstration of the MT-EditFlow algorithm core, in one process (no Ray, no big models).

    python -m examples.core_demo [--config examples/configs/core_demo.yaml] [--output-dir runs] [key=value ...]

What it shows, with numbers:
1. Samplers: our Euler and DPM-Solver++ 2M against diffusers' schedulers on FLUX Kontext's grid.
2. A toy multi-turn "editor": a conditional flow model whose "image" is a vector; an instruction
   asks to move the edit region by an offset and keep the context region. It is pre-trained by
   flow matching on single turns from clean inputs only, so it degrades when fed its own outputs.
3. MT-EditFlow-NFT on it: 3-turn rollouts with dpm2 from the old policy, per-turn IF scores
   (Likert 1-5) and CC on consecutive pairs, fine-grained trajectory IF, advantage-level fusion,
   Edit-R1 group filter, one trajectory advantage broadcast to every turn, DiffusionNFT loss with
   the reference KL, soft update of the old policy; then a few MT-EditFlow-GRPO steps (SDE
   rollouts with log-probs, clipped surrogate).
4. Held-out chains before and after: cumulative and marginal success per turn, CC.
It writes the resolved config and metrics.jsonl to the run folder.
"""
from __future__ import annotations

import argparse
import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edit_rl.config import Config, load_config
from edit_rl.flow import interpolate, kontext_sigmas, sample, sde_step_with_logprob
from edit_rl.objectives import (
    grpo_loss, grpo_train_step_indices, nft_loss, nft_timestep_indices, old_policy_decay, soft_update_)
from edit_rl.observability import RunLogger, create_run_dir
from edit_rl.buffer.training_batch import group_rewards
from edit_rl.rewards import group_filter, optimality_probability

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "core_demo.yaml"
EDIT_DIMS, CONTEXT_DIMS, NUM_INSTRUCTIONS = 4, 4, 6
DIM = EDIT_DIMS + CONTEXT_DIMS


# ----------------------------------------------------------------------------- samplers vs diffusers
def sampler_agreement(num_steps: int = 6, image_seq_len: int = 1024) -> dict[str, float]:
    """Max relative error of our Euler / dpm2 trajectories against diffusers' schedulers."""
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

    sigmas = kontext_sigmas(num_steps, image_seq_len)
    gen = torch.Generator().manual_seed(0)
    x_init = torch.randn(2, 4, 8, 8, generator=gen, dtype=torch.float64)

    def field(x, s):
        s = torch.as_tensor(s, dtype=x.dtype).reshape(-1, *[1] * (x.dim() - 1))
        return torch.tanh(x) * (1 + s) - 0.3 * s * x

    ours = {m: sample(field, x_init, sigmas, m).x0 for m in ("euler", "dpm2")}
    euler = FlowMatchEulerDiscreteScheduler()
    euler.set_timesteps(sigmas=sigmas[:-1].tolist())
    dpm = DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction",
                                      algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint")
    dpm.set_timesteps(num_steps)
    dpm.sigmas = sigmas.clone()
    dpm.timesteps = (sigmas[:-1] * 1000).clone()
    out = {}
    for name, sched, mine in (("euler", euler, ours["euler"]), ("dpm2", dpm, ours["dpm2"])):
        x = x_init.clone()
        for i, t in enumerate(sched.timesteps):
            x = sched.step(field(x, sigmas[i]), t, x, return_dict=False)[0]
        out[name] = float(((mine - x).norm() / x.norm()).item())
    return out


# ----------------------------------------------------------------------------- the toy world
@dataclass
class ToyWorld:
    """Instruction k moves the edit region by offsets[k] and must leave the context region alone."""

    offsets: torch.Tensor  # (K, EDIT_DIMS)
    input_std: float = 0.5  # clean inputs; after a turn or two the editor sees inputs it never trained on
    tolerance: float = 0.5  # edit error at which the Likert score reaches 1

    @classmethod
    def make(cls, seed: int) -> "ToyWorld":
        g = torch.Generator().manual_seed(seed)
        directions = torch.nn.functional.normalize(torch.randn(NUM_INSTRUCTIONS, EDIT_DIMS, generator=g), dim=-1)
        return cls(offsets=1.5 * directions)

    def chains(self, n: int, turns: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return self.input_std * torch.randn(n, DIM, generator=g), torch.randint(0, NUM_INSTRUCTIONS, (n, turns), generator=g)

    def target(self, inputs: torch.Tensor, instr: torch.Tensor) -> torch.Tensor:
        out = inputs.clone()
        out[..., :EDIT_DIMS] += self.offsets[instr]
        return out

    def if_score(self, inputs, outputs, instr) -> torch.Tensor:
        """Likert 1-5 from the edit-region error relative to this turn's own input."""
        err = (outputs[..., :EDIT_DIMS] - self.target(inputs, instr)[..., :EDIT_DIMS]).norm(dim=-1)
        return 5.0 - 4.0 * (err / self.tolerance).clamp(max=1.0)

    def cc_score(self, inputs, outputs) -> torch.Tensor:
        """Consistency in [0, 1] of the context region between consecutive images."""
        return torch.exp(-((outputs[..., EDIT_DIMS:] - inputs[..., EDIT_DIMS:]) ** 2).sum(-1) / 0.5)


class ToyEditor(nn.Module):
    """v(x_t, sigma | reference, instruction): an MLP flow model conditioned on a reference."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.instr = nn.Embedding(NUM_INSTRUCTIONS, 16)
        self.net = nn.Sequential(nn.Linear(2 * DIM + 16 + 8, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, DIM))

    def forward(self, x, sigma, ref, instr):
        freqs = torch.arange(1, 5, dtype=x.dtype) * math.pi
        s = sigma.reshape(-1, 1).to(x.dtype) * freqs
        return self.net(torch.cat([x, torch.sin(s), torch.cos(s), ref, self.instr(instr)], dim=-1))


def pretrain(model: ToyEditor, world: ToyWorld, steps: int, seed: int) -> float:
    """Supervised flow matching on single turns from clean inputs (the base editor)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(steps):
        ref = world.input_std * torch.randn(256, DIM, generator=g)
        instr = torch.randint(0, NUM_INSTRUCTIONS, (256,), generator=g)
        x0, eps, t = world.target(ref, instr), torch.randn(256, DIM, generator=g), torch.rand(256, generator=g)
        loss = ((model(interpolate(x0, eps, t), t, ref, instr) - (eps - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


# ----------------------------------------------------------------------------- rollouts and rewards
@dataclass
class ToyRollout:
    inputs: torch.Tensor   # (B, T, DIM): the reference of each turn (turn k's is turn k-1's output)
    outputs: torch.Tensor  # (B, T, DIM): each turn's final x0
    instr: torch.Tensor    # (B, T)
    sde: list | None = None  # per turn: SamplingResult with recorded SDE steps (GRPO)


@torch.no_grad()
def rollout(model, start, instr, sigmas, method, gen, noise_level=0.7) -> ToyRollout:
    """Multi-turn: every turn edits the model's own previous output."""
    inputs, outputs, records, ref = [], [], [], start
    for k in range(instr.shape[1]):
        fn = lambda x, s, ref=ref, ins=instr[:, k]: model(x, s, ref, ins)  # noqa: E731
        res = sample(fn, torch.randn(start.shape, generator=gen), sigmas, method, generator=gen,
                     noise_level=noise_level, record=method == "sde")
        inputs.append(ref)
        outputs.append(res.x0)
        records.append(res)
        ref = res.x0
    return ToyRollout(torch.stack(inputs, 1), torch.stack(outputs, 1), instr, records if method == "sde" else None)


def score(world: ToyWorld, ro: ToyRollout) -> tuple[torch.Tensor, torch.Tensor]:
    return world.if_score(ro.inputs, ro.outputs, ro.instr), world.cc_score(ro.inputs, ro.outputs)


def advantages(cfg: Config, if_scores, cc_scores):
    """(N, G, T) scores -> trajectory IF (N, G), per-turn advantages (N, G, T) and the fusion, by
    the buffer's own function (edit_rl.buffer.training_batch.group_rewards)."""
    rewards = group_rewards(if_scores, cc_scores, cfg.reward)
    return rewards.r_if, rewards.advantages, rewards.fused


@torch.no_grad()
def evaluate(model, world, cfg, sigmas, seed: int) -> dict[str, list[float]]:
    start, instr = world.chains(256, cfg.rollout.num_turns, seed)
    ro = rollout(model, start, instr, sigmas, "euler", torch.Generator().manual_seed(seed))
    if_s, cc_s = score(world, ro)
    ok = if_s >= cfg.reward.binary_threshold
    return {"marginal": ok.float().mean(0).mul(100).tolist(),
            "cumulative": ok.cumprod(-1).float().mean(0).mul(100).tolist(),
            "cc": cc_s.mean(0).mul(100).tolist()}


# ----------------------------------------------------------------------------- the two objectives
def nft_step(cfg, policy, old, ref_model, opt, world, sigmas, step, gen, ban) -> dict[str, float]:
    rc, nc = cfg.rollout, cfg.objective.nft
    start, instr = world.chains(rc.groups_per_step, rc.num_turns, seed=10_000 + step)
    start = start.repeat_interleave(rc.group_size, 0)
    instr = instr.repeat_interleave(rc.group_size, 0)
    ro = rollout(old, start, instr, sigmas, cfg.sampler.method, gen)  # the old policy samples (NFT)
    shape = (rc.groups_per_step, rc.group_size, rc.num_turns)
    if_s, cc_s = (s.reshape(shape) for s in score(world, ro))
    r_if, adv, fused = advantages(cfg, if_s, cc_s)
    filt = group_filter(r_if, [f"chain-{step}-{i}" for i in range(rc.groups_per_step)],
                        tau_mu=cfg.filter.tau_mu, tau_sigma=cfg.filter.tau_sigma, enabled=cfg.filter.enabled)
    ban.update(filt)
    # Every turn trains on its own x0 with its own condition, weighted by the broadcast advantage.
    b = ro.inputs.shape[0] * rc.num_turns
    x0, ref_img, ins = ro.outputs.reshape(b, DIM), ro.inputs.reshape(b, DIM), ro.instr.reshape(b)
    r = optimality_probability(adv.reshape(b), clip=nc.adv_clip_max)
    mask = filt.sample_mask.unsqueeze(-1).expand(shape).reshape(b).float()
    idx = nft_timestep_indices(b, len(sigmas) - 1, nc.timestep_fraction, generator=gen)
    opt.zero_grad()
    for j in range(idx.shape[1]):
        t = sigmas[idx[:, j]].float()
        x_t = interpolate(x0, torch.randn(x0.shape, generator=gen), t)
        with torch.no_grad():
            v_old, v_ref = old(x_t, t, ref_img, ins), ref_model(x_t, t, ref_img, ins)
        out = nft_loss(policy(x_t, t, ref_img, ins), v_old, x_t, x0, t, r, beta=nc.beta,
                       adv_clip_max=nc.adv_clip_max, v_ref=v_ref, kl_weight=nc.kl_weight, mask=mask)
        (out.total / idx.shape[1]).backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.learner.grad_clip)
    opt.step()
    decay = old_policy_decay(step, nc.decay_type)
    soft_update_(list(old.parameters()), [p.detach() for p in policy.parameters()], decay)
    return {"reward_if_turn": if_s.mean((0, 1)).tolist(), "cc_turn": cc_s.mean((0, 1)).tolist(),
            "loss": float(out.total.detach()), "grad_norm": float(grad_norm), "old_decay": decay,
            "kept_fraction": filt.kept_fraction, "zero_std_ratio": filt.zero_std_ratio,
            "banned_total": len(ban), **{f"fusion/{k}": v for k, v in fused.stats().items()}}


def grpo_step(cfg, policy, ref_model, opt, world, sigmas, step, gen) -> dict[str, float]:
    rc, gc = cfg.rollout, cfg.objective.grpo
    start, instr = world.chains(rc.groups_per_step, rc.num_turns, seed=20_000 + step)
    start = start.repeat_interleave(rc.group_size, 0)
    instr = instr.repeat_interleave(rc.group_size, 0)
    ro = rollout(policy, start, instr, sigmas, "sde", gen, noise_level=cfg.sampler.noise_level)
    shape = (rc.groups_per_step, rc.group_size, rc.num_turns)
    if_s, cc_s = (s.reshape(shape) for s in score(world, ro))
    _, adv, _ = advantages(cfg, if_s, cc_s)
    adv = adv.reshape(-1, rc.num_turns)
    steps = grpo_train_step_indices(len(sigmas) - 1, gc.timestep_fraction)
    opt.zero_grad()
    for k, res in enumerate(ro.sde):  # each turn, each trained denoising step: the same advantage
        for j in steps:
            s, s_next = float(sigmas[j]), float(sigmas[j + 1])
            sig = torch.full((res.latents.shape[0],), s)
            fn = lambda m: m(res.latents[:, j], sig, ro.inputs[:, k], ro.instr[:, k])  # noqa: E731
            new = sde_step_with_logprob(res.latents[:, j], fn(policy), s, s_next, float(sigmas[1]),
                                        cfg.sampler.noise_level, prev_sample=res.next_latents[:, j])
            with torch.no_grad():
                ref = sde_step_with_logprob(res.latents[:, j], fn(ref_model), s, s_next, float(sigmas[1]),
                                            cfg.sampler.noise_level, prev_sample=res.next_latents[:, j])
            out = grpo_loss(new.log_prob, res.log_probs[:, j], adv[:, k], clip_range=gc.clip_range,
                            adv_clip_max=gc.adv_clip_max, mean=new.mean, ref_mean=ref.mean, std=new.std,
                            kl_beta=gc.kl_beta)
            (out.total / (len(steps) * rc.num_turns)).backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.learner.grad_clip)
    opt.step()
    return {"reward_if_turn": if_s.mean((0, 1)).tolist(), "loss": float(out.total.detach()),
            **{k: v for k, v in out.diagnostics.metrics().items() if k in ("clip_frac", "approx_kl")}}


# ----------------------------------------------------------------------------- the driver
def fmt(xs) -> str:
    return " / ".join(f"{x:5.1f}" for x in xs)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--output-dir", default=None, help="run folder parent (default: config output_dir)")
    parser.add_argument("--grpo-steps", type=int, default=5)
    parser.add_argument("--pretrain-steps", type=int, default=200)
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. reward.cc_weight=0.5")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    torch.manual_seed(cfg.trainer.seed)
    run = create_run_dir(cfg, output_dir=args.output_dir)  # config.yaml, samples/, checkpoints/
    run_dir = run.path
    # metrics.jsonl + TensorBoard; GRPO steps follow the NFT ones on one step axis. This demo prints its own lines.
    metrics = RunLogger(run, total_steps=cfg.trainer.num_steps + args.grpo_steps, console=False)
    t_start = time.time()

    print("== 1. samplers vs diffusers (FLUX Kontext grid, 6 steps, 1024 tokens)")
    agreement = sampler_agreement()
    print(f"   sigmas {[round(s, 4) for s in kontext_sigmas(6, 1024).tolist()]}")
    print(f"   max relative error: euler {agreement['euler']:.2e}, dpm2 {agreement['dpm2']:.2e} (target <= 1e-5)")

    print("== 2. toy multi-turn editor, pre-trained on single clean turns")
    world = ToyWorld.make(cfg.trainer.seed)
    policy = ToyEditor()
    fm_loss = pretrain(policy, world, args.pretrain_steps, cfg.trainer.seed)
    base = copy.deepcopy(policy).requires_grad_(False)
    sigmas = kontext_sigmas(cfg.sampler.num_steps, 1024).float()
    before = evaluate(base, world, cfg, sigmas, seed=999)
    print(f"   flow-matching loss {fm_loss:.4f}; held-out success T1/T2/T3 (%): marginal {fmt(before['marginal'])},"
          f" cumulative {fmt(before['cumulative'])}")

    print(f"== 3. MT-EditFlow-NFT: {cfg.trainer.num_steps} steps, {cfg.rollout.groups_per_step} chains x "
          f"G={cfg.rollout.group_size} x {cfg.rollout.num_turns} turns, {cfg.sampler.method} "
          f"{cfg.sampler.num_steps} steps, IF={cfg.reward.if_strategy}, fusion={cfg.reward.fusion} "
          f"(lambda={cfg.reward.cc_weight}), advantages={cfg.reward.advantage_mode}")
    old = copy.deepcopy(policy).requires_grad_(False)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.learner.lr, betas=tuple(cfg.learner.betas),
                            weight_decay=cfg.learner.weight_decay)
    gen = torch.Generator().manual_seed(cfg.trainer.seed)
    from edit_rl.rewards import PromptBanList
    ban = PromptBanList()
    for step in range(cfg.trainer.num_steps):
        m = nft_step(cfg, policy, old, base, opt, world, sigmas, step, gen, ban)
        metrics.log(step, {"objective": "nft", **m})
        if step % max(cfg.trainer.log_every, 1) == 0 or step == cfg.trainer.num_steps - 1:
            print(f"   step {step:3d}  IF per turn {' / '.join(f'{x:.2f}' for x in m['reward_if_turn'])}"
                  f"  CC {m['cc_turn'][-1]:.2f}  loss {m['loss']:+.4f}  kept {m['kept_fraction']:.2f}"
                  f"  A_IF/A_CC var ratio {m['fusion/if_cc_var_ratio']:.1f}")
    after = evaluate(policy, world, cfg, sigmas, seed=999)

    print(f"== 4. MT-EditFlow-GRPO: {args.grpo_steps} steps from the NFT policy (SDE, noise "
          f"{cfg.sampler.noise_level}, clip {cfg.objective.grpo.clip_range})")
    grpo_policy = copy.deepcopy(policy).requires_grad_(True)
    grpo_opt = torch.optim.AdamW(grpo_policy.parameters(), lr=cfg.learner.lr * 0.1)
    for step in range(args.grpo_steps):
        m = grpo_step(cfg, grpo_policy, base, grpo_opt, world, sigmas, step, gen)
        metrics.log(cfg.trainer.num_steps + step, {"objective": "grpo", **m})
        print(f"   step {step:3d}  IF per turn {' / '.join(f'{x:.2f}' for x in m['reward_if_turn'])}"
              f"  loss {m['loss']:+.5f}  clip_frac {m.get('clip_frac', 0):.2f}")
    metrics.close()

    print("== 5. held-out chains (256, Euler) before -> after NFT")
    for key in ("marginal", "cumulative", "cc"):
        deltas = " / ".join(f"{a - b:+5.1f}" for a, b in zip(after[key], before[key]))
        print(f"   {key:10s} T1/T2/T3 (%)  base {fmt(before[key])}   tuned {fmt(after[key])}   delta {deltas}")
    print(f"   run folder: {run_dir}  ({time.time() - t_start:.0f} s)")
    return {"agreement": agreement, "before": before, "after": after, "run_dir": str(run_dir)}


if __name__ == "__main__":
    main()
