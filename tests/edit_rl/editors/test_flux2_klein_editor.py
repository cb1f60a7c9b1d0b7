"""Our FLUX.2-klein editor against diffusers' Flux2KleinPipeline on the tiny build; rollouts and LoRA."""

import dataclasses

import pytest
import torch
from diffusers import Flux2KleinPipeline
from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu as diffusers_empirical_mu
from safetensors.torch import load_file

from edit_rl.config.schema import EditorConfig, LoRAConfig, SamplerConfig
from edit_rl.editors import lora
from edit_rl.editors.flux2_klein import (
    Flux2KleinCondition,
    Flux2KleinEditor,
    batch_norm_denormalize,
    batch_norm_normalize,
    compute_empirical_mu,
    pack_tokens,
    patchify_latents,
    position_ids,
    text_position_ids,
    unpack_tokens,
    unpatchify_latents,
)
from edit_rl.editors.images import tensor_to_pil
from edit_rl.editors.load import load_editor
from edit_rl.editors.lora_targets import lora_config_for
from edit_rl.editors.rollout import rollout_chains
from edit_rl.flow.sampling import sample
from edit_rl.models.registry import resolve_model

TINY = "tiny/flux2-klein"
SIZE = 64
MAX_SEQ = 32  # Qwen3 tokens; the chat template alone takes ~15
TOKENS = (SIZE // 16) ** 2
PROMPT = "make the sky purple"


def _cfg(**overrides) -> EditorConfig:
    values = dict(family="flux2_klein", name_or_path=TINY, dtype="float32", resolution=SIZE,
                  max_sequence_length=MAX_SEQ, gradient_checkpointing=False, guidance_scale=1.0)
    values.update(overrides)
    return EditorConfig(**values)


@pytest.fixture(scope="module")
def path() -> str:
    return resolve_model(TINY)


@pytest.fixture(scope="module")
def pipeline(path) -> Flux2KleinPipeline:
    pipe = Flux2KleinPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def editor(path) -> Flux2KleinEditor:
    """Read-only (no LoRA), guidance 1: no CFG."""
    return Flux2KleinEditor(_cfg())


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Two smooth 64x64 images on the 8-bit grid (so the pipeline's PIL input is the same image)."""
    coarse = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    smooth = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (smooth * 255).round() / 255


def _run_pipeline(pipe, image, steps, seed, guidance, calls=None):
    """The pipeline at an explicit 64x64, recording (kwargs, output) of each transformer call."""
    original = pipe.transformer.forward
    if calls is not None:
        pipe.transformer.forward = lambda *a, **k: calls.append((k, original(*a, **k)[0])) or (calls[-1][1],)
    try:
        return pipe(image=tensor_to_pil(image)[0], prompt=PROMPT, height=SIZE, width=SIZE,
                    num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(seed),
                    output_type="latent", max_sequence_length=MAX_SEQ).images
    finally:
        pipe.transformer.forward = original


def test_transformer_inputs_and_velocity_equal_the_pipelines(editor, pipeline, images):
    calls = []
    _run_pipeline(pipeline, images[:1], steps=3, seed=0, guidance=1.0, calls=calls)
    assert len(calls) == 3
    kwargs, pipe_out = calls[0]
    cond = editor.condition([PROMPT], images[:1])
    x = editor.initial_noise(1, torch.Generator().manual_seed(0))
    assert x.shape == (1, TOKENS, 128)
    assert torch.equal(kwargs["hidden_states"][:, :TOKENS], x)  # same noise, same packing
    # the reference: same image, same VAE; CPU convolutions differ by ~1e-6 between calls
    assert torch.allclose(kwargs["hidden_states"][:, TOKENS:], cond.reference_latents, atol=1e-5, rtol=0)
    assert torch.equal(kwargs["encoder_hidden_states"], cond.prompt_embeds)
    assert torch.equal(kwargs["img_ids"][0], cond.image_ids)
    assert torch.equal(kwargs["txt_ids"][0], editor.text_ids)
    assert kwargs["guidance"] is None
    pipe_sigmas = torch.stack([k["timestep"] for k, _ in calls]).flatten().double()
    assert torch.allclose(pipe_sigmas, editor.sigmas(3)[:-1], atol=1e-6)

    same_reference = dataclasses.replace(cond, reference_latents=kwargs["hidden_states"][:, TOKENS:])
    v = editor.velocity(kwargs["hidden_states"][:, :TOKENS], kwargs["timestep"], same_reference)
    assert torch.allclose(v, pipe_out[:, :TOKENS], atol=1e-6, rtol=0)
    # the tiny model is not degenerate: the prompt and the reference both move the velocity
    with torch.no_grad():
        other_prompt = editor.velocity(x, torch.ones(1), editor.condition(["add a red hat"], images[:1]))
        other_image = editor.velocity(x, torch.ones(1), editor.condition([PROMPT], images[1:]))
        v1 = editor.velocity(x, torch.ones(1), cond)
    assert (other_prompt - v1).abs().mean() > 0.02 * v1.abs().mean()
    assert (other_image - v1).abs().mean() > 0.005 * v1.abs().mean()


@pytest.mark.parametrize("guidance", [1.0, 4.0])
@pytest.mark.slow
def test_full_euler_edit_equals_the_pipeline(path, pipeline, images, guidance):
    editor = Flux2KleinEditor(_cfg(guidance_scale=guidance))
    assert editor.do_cfg == (guidance > 1)
    calls = []
    pipe_latents = _run_pipeline(pipeline, images[1:], steps=4, seed=3, guidance=guidance, calls=calls)
    assert len(calls) == (8 if guidance > 1 else 4)  # CFG: a second pass with the empty prompt
    cond = editor.condition([PROMPT], images[1:])
    x = editor.initial_noise(1, torch.Generator().manual_seed(3))
    with torch.no_grad():
        result = sample(lambda xx, s: editor.velocity(xx, s, cond), x, editor.sigmas(4), "euler")
    ours = editor.vae_latents(result.x0)
    assert ours.shape == pipe_latents.shape == (1, 32, 8, 8)
    assert torch.allclose(ours, pipe_latents, atol=5e-4, rtol=0)
    assert pipe_latents.abs().mean() > 0.5
    images_out = editor.decode(result.x0)
    with torch.no_grad():
        pipe_images = pipeline.image_processor.postprocess(pipeline.vae.decode(pipe_latents).sample, output_type="pt")
    assert images_out.shape == (1, 3, SIZE, SIZE) and images_out.min() >= 0 and images_out.max() <= 1
    assert torch.allclose(images_out, pipe_images, atol=1e-3, rtol=0)


def test_sigmas_use_flux2s_empirical_mu(editor):
    # L = 16 tokens, n = 4: mu is linear in n through (10, a1 L + b1) and (200, a2 L + b2)
    a1, b1, a2, b2 = 8.73809524e-05, 1.89833333, 0.00016927, 0.45666666
    m10, m200 = a1 * 16 + b1, a2 * 16 + b2
    mu = m200 + (4 - 200) * (m200 - m10) / 190
    assert mu == pytest.approx(1.945216, abs=1e-6)
    assert compute_empirical_mu(16, 4) == pytest.approx(mu, abs=1e-12)
    assert compute_empirical_mu(5000, 50) == pytest.approx(a2 * 5000 + b2)  # large images: n does not matter
    for length, steps in [(16, 4), (1024, 6), (4096, 28), (5000, 50)]:
        assert compute_empirical_mu(length, steps) == pytest.approx(diffusers_empirical_mu(length, steps), abs=1e-9)
    sigmas = editor.sigmas(4)
    linear = torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64)
    e = torch.exp(torch.tensor(mu, dtype=torch.float64))
    assert torch.allclose(sigmas[:-1], e / (e + 1 / linear - 1), atol=1e-12)
    assert sigmas[-1] == 0 and sigmas.dtype == torch.float64


def test_latent_layout_matches_diffusers_helpers():
    z = torch.randn(2, 32, 6, 8, generator=torch.Generator().manual_seed(0))
    patched = patchify_latents(z)
    assert torch.equal(patched, Flux2KleinPipeline._patchify_latents(z))
    assert torch.equal(unpatchify_latents(patched), z)
    assert torch.equal(pack_tokens(patched), Flux2KleinPipeline._pack_latents(patched))
    ids = position_ids(3, 4, time=0)
    assert torch.equal(ids, Flux2KleinPipeline._prepare_latent_ids(patched)[0])
    tokens = pack_tokens(patched)
    by_ids = Flux2KleinPipeline._unpack_latents_with_ids(tokens, ids[None].expand(2, -1, -1), 3, 4)
    assert torch.equal(unpack_tokens(tokens, 3, 4), by_ids)
    assert torch.equal(position_ids(3, 4, time=10), Flux2KleinPipeline._prepare_image_ids([patched[:1]])[0])
    assert torch.equal(text_position_ids(5), Flux2KleinPipeline._prepare_text_ids(torch.zeros(1, 5, 2))[0])
    assert patchify_latents(torch.arange(16.0).reshape(1, 1, 4, 4))[0, :, 0, 1].tolist() == [2, 3, 6, 7]
    mean, var = torch.tensor([0.5, -1.0]), torch.tensor([4.0, 0.25])
    normed = batch_norm_normalize(torch.full((1, 2, 1, 1), 2.5), mean, var, eps=0.0)
    assert normed.flatten().tolist() == [1.0, 7.0]
    assert torch.allclose(batch_norm_denormalize(normed, mean, var, eps=0.0), torch.full((1, 2, 1, 1), 2.5))


def test_condition_layout_and_an_output_size_other_than_the_reference(editor, images):
    cond = editor.condition([PROMPT, "add a hat"], images)
    assert cond.prompt_embeds.shape == (2, MAX_SEQ, 48)  # 3 layers x hidden 16
    assert cond.reference_latents.shape == (2, TOKENS, 128)
    assert cond.image_ids.shape == (2 * TOKENS, 4) and cond.image_ids.dtype == torch.long
    assert cond.image_ids[:TOKENS, 0].eq(0).all() and cond.image_ids[TOKENS:, 0].eq(10).all()
    assert torch.equal(cond.image_ids[:TOKENS, 1:], cond.image_ids[TOKENS:, 1:])
    assert cond.image_ids[5].tolist() == [0, 1, 1, 0]  # row-major over a 4-wide grid
    # the reference row is independent of the other rows
    single = editor.condition(["add a hat"], images[1:])
    assert torch.allclose(single.prompt_embeds, cond.prompt_embeds[1:], atol=1e-5)
    joined = Flux2KleinCondition.cat([cond.select([1]), cond.select([0])])
    assert torch.equal(joined.reference_latents, cond.reference_latents.flip(0))

    small = Flux2KleinEditor(_cfg(resolution=32))
    cond = small.condition([PROMPT], images[:1])  # 64x64 reference, 32x32 output
    assert cond.image_ids.shape == (4 + 16, 4)
    x = small.initial_noise(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = small.decode(sample(lambda xx, s: small.velocity(xx, s, cond), x, small.sigmas(2), "euler").x0)
    assert out.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="multiple of 16"):
        small.condition([PROMPT], images[:1, :, :40, :40])


@pytest.mark.slow
def test_three_turn_rollout(editor, images):
    chains = [["make it red", "add a hat", "zoom out"], ["remove the dog", "make it night", "add snow"]]
    r = rollout_chains(editor, images, chains, 2, SamplerConfig(method="dpm2", num_steps=2),
                       torch.Generator().manual_seed(0))
    assert len(r.turns) == 3 and r.group_ids.tolist() == [0, 0, 1, 1]
    for k, turn in enumerate(r.turns):
        assert turn.x0.shape == (4, TOKENS, 128) and turn.images.shape == (4, 3, SIZE, SIZE)
        assert turn.prompts == [chains[0][k]] * 2 + [chains[1][k]] * 2
        assert not torch.equal(turn.x0[0], turn.x0[1])
    for k in (1, 2):  # turn k is conditioned on turn k-1's decoded output
        assert torch.allclose(r.turns[k].condition.reference_latents, editor.encode_images(r.turns[k - 1].images),
                              atol=1e-5)
    again = rollout_chains(editor, images, chains, 2, SamplerConfig(method="dpm2", num_steps=2),
                           torch.Generator().manual_seed(0))
    assert torch.equal(again.turns[2].x0, r.turns[2].x0)


def test_lora_uses_flux2_targets_and_trains_only_lora(path, images, tmp_path):
    editor = Flux2KleinEditor(_cfg())
    cfg = lora_config_for(editor, LoRAConfig(rank=4, alpha=8))  # the schema's (FLUX.1) default targets
    assert "to_qkv_mlp_proj" in cfg.target_modules
    assert "single_transformer_blocks.1.attn.to_out" in cfg.target_modules
    lora.add_lora(editor.transformer, cfg)
    trainable = [n for n, p in editor.transformer.named_parameters() if p.requires_grad]
    # 1 double block x 8 projections + 2 single blocks x (to_qkv_mlp_proj, to_out), A and B each
    assert len(trainable) == 2 * (8 + 2 * 2) and all("lora_" in n and ".default." in n for n in trainable)

    cond = editor.condition([PROMPT, PROMPT], images)
    x = editor.initial_noise(2, torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.8, 0.3])
    base = {n: p.detach().clone() for n, p in editor.transformer.named_parameters() if "lora_" not in n}
    with torch.no_grad():
        v_before = editor.velocity(x, sigma, cond)
    optimizer = torch.optim.AdamW(lora.trainable_parameters(editor.transformer), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        editor.velocity(x, sigma, cond).pow(2).mean().backward()
        optimizer.step()
    with torch.no_grad():
        v_after = editor.velocity(x, sigma, cond)
        with lora.active_adapter(editor.transformer, "old"):
            v_old = editor.velocity(x, sigma, cond)
    assert (v_after - v_before).abs().max() > 1e-3
    assert torch.allclose(v_old, v_before, atol=1e-6)  # the old adapter did not move
    assert all(torch.equal(p, base[n]) for n, p in editor.transformer.named_parameters() if "lora_" not in n)

    lora.save_lora_weights(editor, tmp_path)
    assert len(load_file(tmp_path / "pytorch_lora_weights.safetensors")) == len(trainable)
    pipe = Flux2KleinPipeline.from_pretrained(path)
    pipe.load_lora_weights(tmp_path)
    with torch.no_grad():
        hidden = torch.cat([x, cond.reference_latents], 1)
        v_pipe = pipe.transformer(hidden_states=hidden, timestep=sigma, guidance=None,
                                  encoder_hidden_states=cond.prompt_embeds, txt_ids=editor.text_ids,
                                  img_ids=cond.image_ids, return_dict=False)[0][:, :TOKENS]
    assert torch.allclose(v_pipe, v_after, atol=1e-5)


def test_bfloat16_editor_equals_the_bfloat16_pipeline(path, images):
    pipe = Flux2KleinPipeline.from_pretrained(path, dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    _run_pipeline(pipe, images[:1], steps=2, seed=0, guidance=1.0, calls=calls)
    kwargs, pipe_out = calls[1]
    editor = Flux2KleinEditor(_cfg(dtype="bfloat16"))
    cond = editor.condition([PROMPT], images[:1])
    assert cond.prompt_embeds.dtype == torch.bfloat16
    assert torch.equal(kwargs["encoder_hidden_states"], cond.prompt_embeds)
    same_reference = dataclasses.replace(cond, reference_latents=kwargs["hidden_states"][:, TOKENS:])
    x = kwargs["hidden_states"][:, :TOKENS].float()  # our sampler keeps float32 state
    with torch.no_grad():
        v = editor.velocity(x, kwargs["timestep"].float(), same_reference)
    assert v.dtype == torch.float32 and torch.equal(v, pipe_out[:, :TOKENS].float())


def test_load_editor_builds_flux2_klein():
    assert isinstance(load_editor(_cfg()), Flux2KleinEditor)
