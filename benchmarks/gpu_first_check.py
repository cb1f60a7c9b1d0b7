"""The first run on a GPU: one script, no downloads, a few minutes on one H100 / H200.

    python -m benchmarks.gpu_first_check                    # on the GPU machine
    python -m benchmarks.gpu_first_check --dry-run          # anywhere: environment + the planner's estimates
    python -m benchmarks.gpu_first_check --device cpu --size tiny   # the whole script on a tiny FLUX, on CPU

Checks, each recorded pass / fail (a failure does not stop the rest):
  * driver, torch, CUDA and which SDPA backends run (flash, memory-efficient, cuDNN, math);
  * each role's device: the tiny FLUX.1-Kontext editor loaded through `load_editor` on the device;
  * one rollout per sampler (Euler ODE, Flow-GRPO SDE, DPM-Solver++ 2M) on the full-size
    FLUX.1-Kontext transformer with random bf16 weights (built from the real config) at a small
    resolution, text embeddings and reference latents random;
  * one learner step per objective (DiffusionNFT, Flow-GRPO) with LoRA, AdamW and gradient
    checkpointing at full size, its peak memory (torch.cuda.max_memory_allocated) against the
    planner's estimate: within 20 %, or "recalibrate";
  * with 2 or more GPUs: NCCL all-reduce, one process per GPU each seeing only its own GPU (Ray's
    layout): the sum's value (order) and the bus bandwidth.
Writes <out>/<date>-<gpu>.md and .json (default out: results/gpu).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edit_rl.config.schema import EditorConfig, LoRAConfig
from edit_rl.editors.lora import OLD_ADAPTER, active_adapter, add_lora, trainable_parameters
from edit_rl.flow.sampling import sample
from edit_rl.flow.sde import sde_step_with_logprob
from edit_rl.flow.sigmas import kontext_sigmas
from edit_rl.objectives.grpo import grpo_loss
from edit_rl.objectives.nft import nft_loss
from edit_rl.planning.architectures import build_on, parameter_count
from edit_rl.planning.role_memory import FP32
from edit_rl.planning.transformer_costs import transformer_costs

TOLERANCE = 0.20
TINY = dict(num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
            pooled_projection_dim=32, axes_dims_rope=(4, 6, 6))


@dataclass
class Report:
    device: str
    size: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def run(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            entry = {"check": name, "ok": True, **fn()}
        except Exception as exc:  # recorded, and the remaining checks still run
            entry = {"check": name, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc(limit=4)}
        entry["seconds"] = round(time.perf_counter() - start, 2)
        self.checks.append(entry)
        print(f"[{'ok' if entry['ok'] else 'FAIL'}] {name} ({entry['seconds']} s)"
              + ("" if entry["ok"] else f": {entry['error']}"), flush=True)
        return entry


def environment(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info |= {"gpu": props.name, "gpu_count": torch.cuda.device_count(), "capability": f"{props.major}.{props.minor}",
                 "memory_gib": round(props.total_memory / 2 ** 30, 1),
                 "driver": _nvidia_smi("driver_version"), "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
        if torch.version.cuda is None:
            raise RuntimeError("torch is a CPU build on a GPU machine (torch.version.cuda is None)")
    return info


def _nvidia_smi(query: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True)
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def attention_backends(device: str) -> dict[str, Any]:
    """Run SDPA once under each backend alone; which ones this GPU / build supports."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    q = torch.randn(1, 4, 256, 64, device=device, dtype=dtype)
    result = {}
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                    SDPBackend.MATH):
        try:
            with sdpa_kernel([backend]):
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
            result[backend.name] = "ok"
        except RuntimeError as exc:
            result[backend.name] = f"unavailable: {str(exc).splitlines()[0][:120]}"
    if result["MATH"] != "ok":
        raise RuntimeError("even the math SDPA backend fails")
    return {"sdpa": result}


def roles_on_device(device: str) -> dict[str, Any]:
    """The roles' models, tiny and built locally (no download), loaded by the library on ``device``:
    the FLUX.1-Kontext editor (`load_editor`, what a rollout worker and a learner rank hold), the CC
    service's detector and feature extractor (`build_consistency`) and the judge's transformers
    backend. Every parameter must be on ``device``."""
    from edit_rl.config.schema import ConsistencyConfig
    from edit_rl.consistency.build import build_consistency
    from edit_rl.editors.load import load_editor
    from edit_rl.judge.transformers_backend import TransformersJudgeBackend
    from edit_rl.models.registry import resolve_model

    editor = load_editor(EditorConfig(name_or_path="tiny/flux-kontext", dtype="float32", resolution=64), device)
    cc = build_consistency(ConsistencyConfig(detector="tiny/grounding-dino", features="tiny/dinov3",
                                             image_size=64), device)
    judge = TransformersJudgeBackend(resolve_model("tiny/qwen3-vl"), "float32", device)
    modules = {f"editor.{name}": m for name, m in vars(editor).items() if isinstance(m, torch.nn.Module)}
    modules |= {"cc.detector": cc.detector.model, "cc.features": cc.features.model, "judge": judge.model}
    expected = str(torch.device(device).type)
    placed = {}
    for name, module in modules.items():
        devices = sorted({p.device.type for p in module.parameters()})
        placed[name] = devices
        if devices != [expected]:
            raise RuntimeError(f"{name} is on {devices}, expected {expected}")
    return {"components": placed}


@dataclass
class FluxSetup:
    transformer: torch.nn.Module
    resolution: int
    text_tokens: int
    batch: int
    device: str
    dtype: torch.dtype

    @property
    def image_tokens(self) -> int:
        return (self.resolution // 16) ** 2

    def condition(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        cfg = self.transformer.config
        draw = lambda *shape: torch.randn(*shape, generator=generator).to(self.device, self.dtype)  # noqa: E731
        return {"encoder_hidden_states": draw(self.batch, self.text_tokens, cfg.joint_attention_dim),
                "pooled_projections": draw(self.batch, cfg.pooled_projection_dim),
                "reference": draw(self.batch, self.image_tokens, cfg.in_channels)}

    def velocity(self, cond: dict[str, torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        tokens = self.image_tokens
        ids = torch.zeros(2 * tokens, 3, device=self.device)
        txt_ids = torch.zeros(self.text_tokens, 3, device=self.device)
        guidance = torch.full((self.batch,), 2.5, device=self.device)

        def v(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            hidden = torch.cat([x.to(self.dtype), cond["reference"]], dim=1)
            out = self.transformer(hidden_states=hidden, encoder_hidden_states=cond["encoder_hidden_states"],
                                   pooled_projections=cond["pooled_projections"], timestep=sigma.to(self.dtype),
                                   guidance=guidance, img_ids=ids, txt_ids=txt_ids, return_dict=False)[0]
            return out[:, :tokens].float()
        return v


def build_flux(device: str, size: str, resolution: int, text_tokens: int, batch: int) -> FluxSetup:
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformer = build_on("flux_kontext_transformer", device, dtype, **(TINY if size == "tiny" else {}))
    return FluxSetup(transformer, resolution, text_tokens, batch, device, dtype)


def rollout(setup: FluxSetup, method: str, steps: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(1)
    cond = setup.condition(generator)
    noise = torch.randn(setup.batch, setup.image_tokens, setup.transformer.config.in_channels,
                        generator=generator).to(setup.device)
    sigmas = kontext_sigmas(steps, setup.image_tokens)
    _sync(setup.device)
    start = time.perf_counter()
    with torch.no_grad():
        result = sample(setup.velocity(cond), noise, sigmas, method, generator=torch.Generator().manual_seed(2),
                        record=method == "sde")
    _sync(setup.device)
    if not torch.isfinite(result.x0).all():
        raise RuntimeError(f"{method} rollout produced non-finite latents")
    return {"method": method, "steps": steps, "seconds_per_step": round((time.perf_counter() - start) / steps, 3)}


def planned_learner_bytes(setup: FluxSetup, size: str, lora_rank: int) -> int | None:
    """The planner's learner-rank estimate for this single-GPU step: the transformer replicated, LoRA
    default + old fp32, fp32 gradients, AdamW's two moments, one micro-batch's activations."""
    if size != "full":
        return None
    weights = parameter_count("flux_kontext_transformer") * 2
    lora = sum(p.numel() for p in trainable_parameters(setup.transformer))
    costs = transformer_costs("flux_kontext", setup.resolution, setup.text_tokens, True)
    activations = costs.batch_training_bytes(setup.batch) + setup.batch * costs.inference_bytes
    return weights + lora * FP32 * (2 + 1 + 2) + activations


def learner_step(setup: FluxSetup, objective: str, size: str, lora_rank: int) -> dict[str, Any]:
    transformer = setup.transformer
    if not hasattr(transformer, "peft_config"):
        add_lora(transformer, LoRAConfig(rank=lora_rank, alpha=2 * lora_rank), with_old=True)
        transformer.enable_gradient_checkpointing()
    params = trainable_parameters(transformer)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    generator = torch.Generator().manual_seed(3)
    cond = setup.condition(generator)
    velocity = setup.velocity(cond)
    shape = (setup.batch, setup.image_tokens, transformer.config.in_channels)
    x0, noise = (torch.randn(shape, generator=generator).to(setup.device) for _ in range(2))
    t = torch.full((setup.batch,), 0.7, device=setup.device)
    x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
    if setup.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    v_theta = velocity(x_t, t)
    if objective == "nft":
        with torch.no_grad(), active_adapter(transformer, OLD_ADAPTER):
            v_old = velocity(x_t, t)
        loss = nft_loss(v_theta, v_old, x_t, x0, t, torch.rand(setup.batch, generator=generator).to(setup.device),
                        kl_weight=0.0).total
    else:
        s, s_next = 0.7, 0.55
        step = sde_step_with_logprob(x_t, v_theta.detach(), s, s_next, 1.0, 0.9, generator=generator)
        new = sde_step_with_logprob(x_t, v_theta, s, s_next, 1.0, 0.9, prev_sample=step.prev_sample)
        advantages = torch.linspace(-1.0, 1.0, setup.batch, device=setup.device)
        loss = grpo_loss(new.log_prob, step.log_prob.detach(), advantages).total
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _sync(setup.device)
    entry: dict[str, Any] = {"objective": objective, "loss": float(loss.detach()), "seconds": round(time.perf_counter() - start, 2)}
    if not torch.isfinite(loss):
        raise RuntimeError(f"{objective} loss is not finite")
    planned = planned_learner_bytes(setup, size, lora_rank)
    if setup.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
        entry |= {"peak_gib": round(peak / 2 ** 30, 2)}
        if planned is not None:
            ratio = peak / planned
            entry |= {"planned_gib": round(planned / 2 ** 30, 2), "measured_over_planned": round(ratio, 3),
                      "verdict": "within 20%" if abs(ratio - 1) <= TOLERANCE else "recalibrate"}
    return entry


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _nccl_worker(rank: int, world: int, port: int, queue: Any) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = str(rank)  # one visible GPU per process, as Ray gives an actor
    import torch.distributed as dist

    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.cuda.set_device(0)
    ordered = torch.arange(4, device="cuda", dtype=torch.float64) * (rank + 1)
    dist.all_reduce(ordered)
    payload = torch.ones(64 * 2 ** 20, device="cuda", dtype=torch.float32)  # 256 MiB
    for _ in range(2):
        dist.all_reduce(payload)
    torch.cuda.synchronize()
    start = time.perf_counter()
    repeats = 5
    for _ in range(repeats):
        dist.all_reduce(payload)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    bus = payload.numel() * 4 * 2 * (world - 1) / world / seconds / 1e9
    if rank == 0:
        queue.put({"ordered": ordered.tolist(), "bus_gb_s": round(bus, 1)})
    dist.destroy_process_group()


def nccl_check(world: int) -> dict[str, Any]:
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=_nccl_worker, args=(r, world, port, queue)) for r in range(world)]
    for p in procs:
        p.start()
    result = queue.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
    expected = [i * world * (world + 1) / 2 for i in range(4)]
    if result["ordered"] != expected:
        raise RuntimeError(f"all-reduce sum {result['ordered']} != {expected}")
    return {"world": world, **result}


def write_report(report: Report, env: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    gpu = (env.get("gpu") or report.device).lower().replace(" ", "-")
    stem = f"{datetime.date.today().isoformat()}-{gpu}"
    command = "python -m benchmarks.gpu_first_check " + " ".join(sys.argv[1:])
    data = {"command": command, "device": report.device, "size": report.size, "environment": env,
            "checks": report.checks}
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(data, indent=2, default=str))
    lines = [f"# {command}", "", f"device {report.device}, size {report.size}", "",
             "| check | ok | s | result |", "|---|---|---|---|"]
    for c in report.checks:
        shown = {k: v for k, v in c.items() if k not in ("check", "ok", "seconds", "traceback")}
        lines.append(f"| {c['check']} | {'yes' if c['ok'] else 'NO'} | {c['seconds']} | {json.dumps(shown, default=str)} |")
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_first_check", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--text-tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--lora-rank", type=int, default=32)
    parser.add_argument("--dry-run", action="store_true", help="environment and the planner's estimates only")
    parser.add_argument("--out", default="results/gpu")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available() and not args.dry_run:
        print("CUDA is not available; use --dry-run or --device cpu --size tiny", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else args.device
    report = Report(device, args.size)
    env = report.run("environment", lambda: environment(device)).copy()
    report.run("attention kernels", lambda: attention_backends(device))
    if args.dry_run:
        costs = transformer_costs("flux_kontext", args.resolution, args.text_tokens, True)
        report.run("planner estimate", lambda: {
            "forward_tflops_per_sample": round(costs.forward_flops / 1e12, 2),
            "training_gib_per_sample": round(costs.training_bytes / 2 ** 30, 2),
            "transformer_parameters": parameter_count("flux_kontext_transformer")})
    else:
        report.run("roles on device", lambda: roles_on_device(device))
        setup = build_flux(device, args.size, args.resolution, args.text_tokens, args.batch)
        for method in ("euler", "sde", "dpm2"):
            report.run(f"rollout {method}", lambda m=method: rollout(setup, m, args.steps))
        for objective in ("nft", "grpo"):
            report.run(f"learner step {objective}", lambda o=objective: learner_step(setup, o, args.size, args.lora_rank))
        if device.startswith("cuda") and torch.cuda.device_count() >= 2:
            del setup
            torch.cuda.empty_cache()
            report.run("nccl all-reduce", lambda: nccl_check(torch.cuda.device_count()))
    md_path, json_path = write_report(report, env, Path(args.out))
    print(f"wrote {md_path} and {json_path}")
    return 0 if all(c["ok"] for c in report.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
