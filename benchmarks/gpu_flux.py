"""GPU: a full-size FLUX.1-Kontext transformer (random weights, bf16) denoising a 512x512 target plus its
reference in our rollout / in diffusers' FluxKontextPipeline, and the learner's forward-backward
throughput with LoRA and gradient checkpointing.

    python -m benchmarks.gpu_flux [--quick] [--steps 6] [--resolution 512] [--json PATH]
    python -m benchmarks.gpu_flux --tiny --quick     # the same code on the tiny model, CPU, float32

Needs a CUDA device (refuses without one unless --tiny). Nothing is downloaded: the transformer is
FLUX.1-dev's / Kontext-dev's architecture (19 double + 38 single blocks, 24 heads x 128, T5 4096,
CLIP pooled 768, guidance embedding, rope axes (16, 56, 56)) built with seeded random weights in bf16
directly on the device; it replaces the transformer of our `FluxKontextEditor` loaded from the tiny
FLUX.1-Kontext folder (whose scheduler config is Kontext-dev's; its tiny text encoders and VAE are
never called). --tiny builds the project's tiny transformer (1 + 2 blocks) the same way.

Inputs, identical on both sides: random T5 (512 x 4096) and pooled CLIP (768) prompt embeddings,
random initial noise (1024 packed tokens of 64 channels at 512x512, rounded to bf16 as diffusers
stores it) and random normalised reference latents (the same 1024 tokens; diffusers gets them
unpacked, (B, 16, 64, 64), which it takes as latents and packs, so no VAE runs), the same transformer
object, guidance 2.5, Euler over Kontext's shifted sigma grid (ours: `FluxKontextEditor.sigmas`;
diffusers: its scheduler's, checked equal), ``output_type="latent"`` (no decode).

Timed: the denoising steps only, from the transformer's first forward of a call (a forward pre-hook,
synchronised) to the end of the call (synchronised), divided by the steps: every step's transformer
forward on [target; reference] tokens and the sampler update (ours keeps the state in float32,
diffusers in the latents' bf16, as each does in use). Ours is the loop of
`edit_rl.editors.rollout.rollout_chains` (`edit_rl.flow.sampling.sample` over
`FluxKontextEditor.velocity`, method "euler"); diffusers' is ``FluxKontextPipeline.__call__``.
Not timed: text encoding, VAE encode / decode, the pipeline's set-up before its first step.
The two sides alternate call by call after a warm-up call each; the figure is the median of the
per-call ratios. The final latents of both are compared (max |gap|, in the detail).

Learner: LoRA ("default" adapter, rank 64 on `lora_targets`' FLUX.1 attention projections, float32
adapter weights) on the same transformer; one sample per micro-batch: `FluxKontextEditor.velocity`
with gradients at a noisy x_t, the flow-matching MSE, backward (accumulating into the LoRA grads),
with gradient checkpointing on and off alternately (each timed over a few micro-batches); samples/s
with it on, and on / off, with both peaks of ``torch.cuda.max_memory_allocated``. Not timed: the
NFT objective's extra no-grad forwards (old policy, reference) and the optimizer step.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time

from benchmarks.report import Figure, median, save, show, spread

# FLUX.1-dev / FLUX.1-Kontext-dev transformer/config.json
FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=(16, 56, 56))
GIB = 2 ** 30


def build_transformer(tiny: bool, device, dtype):
    """Seeded random weights, created in ``dtype`` on ``device`` (no float32 copy of 12B parameters)."""
    import torch
    from diffusers import FluxTransformer2DModel

    from edit_rl.models.tiny.flux_kontext import tiny_transformer

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = tiny_transformer() if tiny else FluxTransformer2DModel(**FLUX_DEV)
    finally:
        torch.set_default_dtype(previous)
    return model.requires_grad_(False).eval()


def build_editor(tiny: bool, device, dtype, resolution: int):
    """Our `FluxKontextEditor` (tiny folder: scheduler config, latent layout) with the benchmark's transformer."""
    from edit_rl.config.schema import EditorConfig
    from edit_rl.editors.flux_kontext import FluxKontextEditor

    cfg = EditorConfig(name_or_path="tiny/flux-kontext", dtype=str(dtype).removeprefix("torch."),
                       resolution=resolution, gradient_checkpointing=False)
    editor = FluxKontextEditor(cfg, device)
    editor.transformer = build_transformer(tiny, editor.device, editor.dtype)
    return editor


@dataclasses.dataclass
class Inputs:
    cond: object  # FluxKontextCondition: what our velocity takes
    noise: object  # (B, N, 64) float32, bf16-representable
    reference: object  # (B, 16, h, w): the same reference, unpacked, for diffusers
    text_tokens: int


def make_inputs(editor, batch: int, text_tokens: int) -> Inputs:
    import torch

    from edit_rl.editors.flux_kontext import FluxKontextCondition
    from edit_rl.editors.flux_latents import latent_image_ids, pack_latents

    config = editor.transformer.config
    g = torch.Generator().manual_seed(1)
    n = editor.latent_size

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(editor.device, editor.dtype)

    reference = rand(batch, config.in_channels // 4, n, n)
    cond = FluxKontextCondition(
        prompt_embeds=rand(batch, text_tokens, config.joint_attention_dim),
        pooled_prompt_embeds=rand(batch, config.pooled_projection_dim),
        reference_latents=pack_latents(reference),
        image_ids=torch.cat([editor.target_ids, latent_image_ids(n // 2, n // 2, first=1).to(editor.device)]))
    noise = pack_latents(rand(batch, config.in_channels // 4, n, n)).float()
    return Inputs(cond, noise, reference, text_tokens)


class StepClock:
    """Seconds per denoising step of one call: from the transformer's first forward in the call to
    the call's end, both synchronised on CUDA, over the number of steps."""

    def __init__(self, transformer, device) -> None:
        self.device, self.start = device, None
        self.hook = transformer.register_forward_pre_hook(self._first_forward)

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _first_forward(self, module, args) -> None:
        if self.start is None:
            self.sync()
            self.start = time.perf_counter()

    def per_step(self, call, steps: int):
        self.start = None
        out = call()
        self.sync()
        return (time.perf_counter() - self.start) / steps, out


def measure_denoise(editor, inputs: Inputs, steps: int, rounds: int) -> Figure:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline

    from edit_rl.flow.sampling import sample

    cond, res = inputs.cond, editor.resolution
    sigmas = editor.sigmas(steps)

    @torch.no_grad()
    def ours():
        return sample(lambda x, sigma: editor.velocity(x, sigma, cond), inputs.noise, sigmas, "euler").x0

    pipe = FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(editor.scheduler_config), vae=editor.vae,
        text_encoder=editor.text_encoder, tokenizer=editor.tokenizer, text_encoder_2=editor.text_encoder_2,
        tokenizer_2=editor.tokenizer_2, transformer=editor.transformer)
    pipe.set_progress_bar_config(disable=True)

    def theirs():
        return pipe(image=inputs.reference, prompt_embeds=cond.prompt_embeds,
                    pooled_prompt_embeds=cond.pooled_prompt_embeds, latents=inputs.noise, height=res, width=res,
                    max_area=res * res, _auto_resize=False, num_inference_steps=steps,
                    guidance_scale=editor.cfg.guidance_scale, max_sequence_length=inputs.text_tokens,
                    output_type="latent", return_dict=False)[0]

    clock = StepClock(editor.transformer, editor.device)
    sides = {"ours": ours, "diffusers": theirs}
    times: dict[str, list[float]] = {name: [] for name in sides}
    finals = {name: clock.per_step(call, steps)[1] for name, call in sides.items()}  # warm-up
    sigma_gap = (pipe.scheduler.sigmas.double().cpu() - sigmas).abs().max().item()
    if sigma_gap > 1e-5:
        raise RuntimeError(f"our sigma grid and diffusers' differ by {sigma_gap:.1e}: not the same steps")
    x0_gap = (finals["ours"].float() - finals["diffusers"].float()).abs().max().item()
    for r in range(rounds):
        for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            times[name].append(clock.per_step(sides[name], steps)[0])
    clock.hook.remove()
    ratios = [o / d for o, d in zip(times["ours"], times["diffusers"])]
    ms = {name: [1000 * t for t in ts] for name, ts in times.items()}
    value = median(ratios)
    return Figure("gpu/flux-kontext/denoise-step/ours-vs-diffusers",
                  "FLUX.1-Kontext time per denoising step, our rollout / diffusers' pipeline", value,
                  target="<= 1.0", ok=value <= 1.0,
                  detail=f"ours {spread(ms['ours'])} ms/step, diffusers {spread(ms['diffusers'])} ms/step; "
                         f"{_setup(editor, inputs, steps)}; max |x0 gap| {x0_gap:.1e}, |sigma gap| {sigma_gap:.0e}")


def _setup(editor, inputs: Inputs, steps: int) -> str:
    c, tokens = editor.transformer.config, editor.num_target_tokens
    dtype = str(editor.dtype).removeprefix("torch.")
    return (f"{c.num_layers}+{c.num_single_layers} blocks ({_count(editor.transformer.parameters())} params), "
            f"{editor.device.type} {dtype}, {editor.resolution}px: batch {inputs.noise.shape[0]} x ({tokens} target "
            f"+ {tokens} reference + {inputs.text_tokens} text tokens), {steps} Euler steps")


def _count(params) -> str:
    n = sum(p.numel() for p in params)
    return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M"


def measure_learner(editor, inputs: Inputs, micro_batches: int, rounds: int, rank: int) -> list[Figure]:
    import torch

    from edit_rl.config.schema import LoRAConfig
    from edit_rl.editors.lora import add_lora, set_gradient_checkpointing, trainable_parameters
    from edit_rl.editors.lora_targets import lora_config_for
    from edit_rl.flow.interpolation import interpolate, velocity_target

    transformer, device = editor.transformer, editor.device
    lora = lora_config_for(editor, LoRAConfig(rank=rank, alpha=rank))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        add_lora(transformer, lora, with_old=False)
    params = trainable_parameters(transformer)
    cond = inputs.cond.select(slice(0, 1))
    x0, noise = inputs.noise[:1].flip(1), inputs.noise[:1]
    t = torch.full((1,), 0.6, device=device)
    cuda = device.type == "cuda"

    def run(checkpointing: bool) -> tuple[float, float]:
        """(seconds for ``micro_batches`` forward-backwards, peak GiB allocated)."""
        set_gradient_checkpointing(transformer, checkpointing)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        for _ in range(micro_batches):
            v = editor.velocity(interpolate(x0, noise, t), t, cond)
            (v.float() - velocity_target(x0, noise)).square().mean().backward()
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        for p in params:
            p.grad = None
        return seconds, torch.cuda.max_memory_allocated(device) / GIB if cuda else math.nan

    modes = {"on": True, "off": False}
    rates: dict[str, list[float]] = {"on": [], "off": []}
    peaks = {"on": run(True)[1]}  # warm-up each; without checkpointing the model may not fit
    oom = ""
    try:
        peaks["off"] = run(False)[1]
    except torch.OutOfMemoryError:
        oom = f"without checkpointing: out of memory ({torch.cuda.max_memory_allocated(device) / GIB:.1f} GiB)"
    if oom:
        for p in params:
            p.grad = None
        torch.cuda.empty_cache()
        del modes["off"], rates["off"]
    for r in range(rounds):
        for name in (list(modes) if r % 2 == 0 else list(modes)[::-1]):
            seconds, peak = run(modes[name])
            rates[name].append(micro_batches / seconds)
            peaks[name] = max(peaks[name], peak)
    mem = " / ".join(f"{name} {peaks[name]:.1f}" for name in peaks) + " GiB" if cuda else "n/a on CPU"
    setup = (f"LoRA rank {rank} on {len(lora.target_modules)} projection kinds "
             f"({_count(params)} params), 1 sample per micro-batch, "
             f"{micro_batches} per timing; peak memory, checkpointing {mem}" + (f"; {oom}" if oom else ""))
    figures = [Figure("gpu/flux-kontext/learner/samples-per-s",
                      "learner forward-backward with LoRA and gradient checkpointing", median(rates["on"]),
                      unit="samples/s", detail=f"{spread(rates['on'])} samples/s; {setup}")]
    if not oom:
        ratios = [a / b for a, b in zip(rates["on"], rates["off"])]
        figures.append(Figure("gpu/flux-kontext/learner/checkpointing-vs-none",
                              "learner samples/s, gradient checkpointing on / off", median(ratios),
                              detail=f"on {spread(rates['on'])}, off {spread(rates['off'])} samples/s; "
                                     f"peak memory, checkpointing {mem}"))
    return figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This script's model and size options (beside `benchmarks.cli.parse`'s --quick and --json)."""
    parser.add_argument("--tiny", action="store_true",
                        help="the project's tiny random FLUX.1-Kontext transformer, float32, on CPU by default")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--steps", type=int, default=6, help="denoising steps per call (default 6, the rollout's)")
    parser.add_argument("--resolution", type=int, default=None, help="target = reference size (default 512; 64 tiny)")
    parser.add_argument("--batch", type=int, default=1, help="rows per denoising call (default 1)")
    parser.add_argument("--lora-rank", type=int, default=64)


def main(argv: list[str] | None = None) -> list[Figure]:
    from benchmarks.cli import parse

    args = parse(__doc__.split("\n")[0], argv, worlds=False, add_arguments=add_arguments)
    import torch

    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if not args.tiny and (device.type != "cuda" or not torch.cuda.is_available()):
        sys.exit("benchmarks.gpu_flux: the full-size FLUX.1-Kontext transformer needs a CUDA GPU "
                 f"(device {device}, CUDA available: {torch.cuda.is_available()}); use --tiny to run the same "
                 "code on the tiny model on CPU")
    if device.type == "cpu":
        torch.set_num_threads(1)
    dtype = torch.float32 if args.tiny else torch.bfloat16
    resolution = args.resolution or (64 if args.tiny else 512)
    editor = build_editor(args.tiny, device, dtype, resolution)
    inputs = make_inputs(editor, args.batch, text_tokens=32 if args.tiny else 512)
    rounds = 2 if args.quick else 5
    figures = show([measure_denoise(editor, inputs, args.steps, rounds)])
    figures += show(measure_learner(editor, inputs, micro_batches=2 if args.quick else 4, rounds=rounds,
                                    rank=args.lora_rank))
    if args.json:
        save(figures, args.json)
    return figures


if __name__ == "__main__":
    main()
