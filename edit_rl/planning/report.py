"""A preset's plan: every role's memory against the card, placement against the node shape, the step
balance and the bytes moved; `problems` lists what makes the preset impossible, naming the role."""
from __future__ import annotations

from dataclasses import dataclass

from edit_rl.config.schema import Config
from edit_rl.planning.cards import ALLOCATOR_MARGIN, CUDA_CONTEXT_BYTES, GIB, Card
from edit_rl.planning.placement_fit import PlacementCheck, placement_checks
from edit_rl.planning.role_memory import VLLM_GPU_MEMORY_UTILIZATION, RoleMemory, role_memories
from edit_rl.planning.step_balance import StepBalance, step_balance


@dataclass(frozen=True)
class Plan:
    card: Card
    gpus_per_node: int
    utilisation: float
    memories: list[RoleMemory]
    placement: list[PlacementCheck]
    balance: StepBalance
    problems: list[str]


def _gib(n: float) -> str:
    return f"{n / GIB:.1f}"


def make_plan(cfg: Config, card: Card, utilisation: float = 0.4, max_nodes: int | None = None) -> Plan:
    memories = role_memories(cfg, card)
    placement = placement_checks(cfg, max_nodes)
    problems = [f"{m.role}: needs {_gib(m.peak)} GiB (steady {_gib(m.steady)}, load {_gib(m.load_peak)}) on "
                f"{m.gpu_fraction:g} x {card.name}, {_gib(m.usable)} GiB usable" for m in memories if not m.fits]
    problems += [f"{p.role}: {p.message}" for p in placement if not p.ok]
    judge = cfg.judge
    if judge.backend == "vllm" and judge.scaling.num_gpus < VLLM_GPU_MEMORY_UTILIZATION:
        problems.append(f"judge replica: vLLM claims {VLLM_GPU_MEMORY_UTILIZATION:.0%} of the GPU, but its bundle "
                        f"reserves judge.scaling.num_gpus={judge.scaling.num_gpus:g}")
    return Plan(card, cfg.cluster.gpus_per_node, utilisation, memories, placement,
                step_balance(cfg, card, utilisation), problems)


def render(plan: Plan, title: str) -> str:
    c = plan.card
    lines = [title, "",
             f"card {c.name}: {c.memory_bytes / 1e9:.0f} GB, {c.bf16_tflops:.0f} bf16 TFLOP/s dense, "
             f"{c.hbm_tb_s} TB/s HBM, {c.nvlink_gb_s:.0f} GB/s NVLink; usable per GPU = "
             f"(1 - {ALLOCATOR_MARGIN:.0%} allocator margin) x memory - {_gib(CUDA_CONTEXT_BYTES)} GiB CUDA context",
             "", "memory per replica / rank (GiB)",
             f"  {'role':<16}{'weights':>9}{'lora':>7}{'grads':>7}{'adam':>7}{'activ.':>8}{'load':>8}{'peak':>8}"
             f"{'usable':>8}  fit"]
    for m in plan.memories:
        lines.append(f"  {m.role:<16}{_gib(m.weights):>9}{_gib(m.lora):>7}{_gib(m.gradients):>7}"
                     f"{_gib(m.optimizer):>7}{_gib(m.activations):>8}{_gib(m.load_peak):>8}{_gib(m.peak):>8}"
                     f"{_gib(m.usable):>8}  {'yes' if m.fits else 'NO'}")
        lines.append(f"      {m.placement}; {m.gpu_fraction:g} GPU; " + "; ".join(m.notes))
    lines += ["", f"placement (nodes of {plan.gpus_per_node} GPUs)"]
    lines += [f"  {p.role:<30}{'ok' if p.ok else 'NO'}  {p.message}" for p in plan.placement]
    b = plan.balance
    lines += ["", f"step balance ({b.mode}, {plan.utilisation:.0%} of bf16 peak assumed): step {b.step_seconds:.0f} s"]
    for t in b.times:
        lines.append(f"  {t.role:<16}{t.seconds:>8.1f} s busy  {b.idle_share(t.role):>4.0%} idle  "
                     f"{t.flops / 1e15:>8.1f} PFLOP  {t.detail}")
    lines += ["", "bytes per step",
              f"  weight sync (LoRA fp32 to every rollout worker) {b.weight_sync_bytes / 2 ** 20:.0f} MiB",
              f"  turn samples through the object store {_gib(b.sample_bytes)} GiB",
              f"  FSDP2 / ZeRO-3 all-gathers per learner rank {b.fsdp_gather_bytes_per_rank / 2 ** 40:.1f} TiB"]
    lines += ["", "result: " + ("fits" if not plan.problems else "CANNOT RUN")]
    lines += [f"  {p}" for p in plan.problems]
    return "\n".join(lines)
