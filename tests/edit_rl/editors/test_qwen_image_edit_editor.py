"""Our Qwen-Image-Edit editor against diffusers' QwenImageEditPipeline on the tiny build; rollouts and LoRA.

The pipeline always resizes the reference to ~1024^2 (``calculate_dimensions(1024 * 1024, ratio)``,
for both the VAE and the VL prompt encoder). Most comparisons run it with that one function
replaced by the reference's own size (monkeypatch), so both sides see the same 64x64 reference;
`test_unpatched_pipeline_with_a_1024_reference` runs the pipeline untouched on a 1024x1024 reference.
"""

import dataclasses

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, QwenImageEditPipeline
from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit
from safetensors.torch import load_file

from edit_rl.config.schema import EditorConfig, LoRAConfig, SamplerConfig
from edit_rl.editors import lora
from edit_rl.editors.images import tensor_to_pil
from edit_rl.editors.load import load_editor
from edit_rl.editors.lora_targets import lora_config_for
from edit_rl.editors.qwen_image_edit import (
    QwenImageEditCondition,
    QwenImageEditEditor,
    qwen_image_sigmas,
    stretch_shift_to_terminal,
    true_cfg_with_norm_rescale,
)
from edit_rl.editors.rollout import rollout_chains
from edit_rl.flow.sampling import sample
from edit_rl.models.registry import resolve_model

TINY = "tiny/qwen-image-edit"
SIZE = 64
TOKENS = (SIZE // 16) ** 2
PROMPT = "make the sky purple"


def _cfg(**overrides) -> EditorConfig:
    values = dict(family="qwen_image_edit", name_or_path=TINY, dtype="float32", resolution=SIZE,
                  gradient_checkpointing=False, guidance_scale=1.0)
    values.update(overrides)
    return EditorConfig(**values)


@pytest.fixture(scope="module")
def path() -> str:
    return resolve_model(TINY)


@pytest.fixture(scope="module")
def pipeline(path) -> QwenImageEditPipeline:
    pipe = QwenImageEditPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def editor(path) -> QwenImageEditEditor:
    """Read-only (no LoRA), guidance 1: no CFG."""
    return QwenImageEditEditor(_cfg())


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Two smooth 64x64 images on the 8-bit grid (so the pipeline's PIL input is the same image)."""
    coarse = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    smooth = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (smooth * 255).round() / 255


@pytest.fixture
def own_size_reference(monkeypatch):
    """The pipeline with its ~1024^2 reference resize replaced by the reference's own size."""
    monkeypatch.setattr(pipeline_qwenimage_edit, "calculate_dimensions", lambda area, ratio: (SIZE, SIZE, None))


def _run_pipeline(pipe, image, steps, seed, guidance, calls=None, size=SIZE):
    original = pipe.transformer.forward
    if calls is not None:
        pipe.transformer.forward = lambda *a, **k: calls.append((k, original(*a, **k)[0])) or (calls[-1][1],)
    try:
        return pipe(image=tensor_to_pil(image)[0], prompt=PROMPT, negative_prompt=" " if guidance > 1 else None,
                    true_cfg_scale=guidance, height=size, width=size, num_inference_steps=steps,
                    generator=torch.Generator().manual_seed(seed), output_type="latent").images
    finally:
        pipe.transformer.forward = original


def test_transformer_inputs_and_velocity_equal_the_pipelines(editor, pipeline, images, own_size_reference):
    calls = []
    _run_pipeline(pipeline, images[:1], steps=3, seed=0, guidance=1.0, calls=calls)
    assert len(calls) == 3
    kwargs, pipe_out = calls[0]
    cond = editor.condition([PROMPT], images[:1])
    x = editor.initial_noise(1, torch.Generator().manual_seed(0))
    assert x.shape == (1, TOKENS, 64)
    assert torch.equal(kwargs["hidden_states"][:, :TOKENS], x)
    assert torch.allclose(kwargs["hidden_states"][:, TOKENS:], cond.reference_latents, atol=1e-5, rtol=0)
    assert torch.equal(kwargs["encoder_hidden_states"], cond.prompt_embeds)
    assert kwargs["encoder_hidden_states_mask"] is None and cond.prompt_mask.all()
    assert kwargs["img_shapes"] == [[(1, 4, 4), (1, 4, 4)]] and cond.image_shapes.tolist() == [[1, 4, 4], [1, 4, 4]]
    assert kwargs["guidance"] is None
    pipe_sigmas = torch.stack([k["timestep"] for k, _ in calls]).flatten().double()
    assert torch.allclose(pipe_sigmas, editor.sigmas(3)[:-1], atol=1e-6)
    # the tokenizer-measured drop index is the pipeline's hard-coded one on this tokenizer
    assert editor.prompt_drop_index == pipeline.prompt_template_encode_start_idx == 64

    same_reference = dataclasses.replace(cond, reference_latents=kwargs["hidden_states"][:, TOKENS:])
    v = editor.velocity(kwargs["hidden_states"][:, :TOKENS], kwargs["timestep"], same_reference)
    assert torch.allclose(v, pipe_out[:, :TOKENS], atol=1e-6, rtol=0)
    with torch.no_grad():  # the prompt and the reference both move the velocity
        v1 = editor.velocity(x, torch.ones(1), cond)
        other_prompt = editor.velocity(x, torch.ones(1), editor.condition(["add a red hat"], images[:1]))
        other_image = editor.velocity(x, torch.ones(1), editor.condition([PROMPT], images[1:]))
    assert (other_prompt - v1).abs().mean() > 0.02 * v1.abs().mean()
    assert (other_image - v1).abs().mean() > 0.02 * v1.abs().mean()


@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_full_euler_edit_equals_the_pipeline(path, pipeline, images, own_size_reference, guidance):
    editor = QwenImageEditEditor(_cfg(guidance_scale=guidance))
    calls = []
    pipe_latents = _run_pipeline(pipeline, images[1:], steps=4, seed=3, guidance=guidance, calls=calls)
    assert len(calls) == (8 if guidance > 1 else 4)
    cond = editor.condition([PROMPT], images[1:])
    if guidance > 1:
        assert torch.equal(calls[1][0]["encoder_hidden_states"], cond.negative_prompt_embeds)
    else:
        assert cond.negative_prompt_embeds.shape == (1, 0, 32)
    x = editor.initial_noise(1, torch.Generator().manual_seed(3))
    with torch.no_grad():
        result = sample(lambda xx, s: editor.velocity(xx, s, cond), x, editor.sigmas(4), "euler")
    assert result.x0.shape == pipe_latents.shape == (1, TOKENS, 64)
    assert torch.allclose(result.x0, pipe_latents, atol=2e-4, rtol=0)
    assert pipe_latents.abs().mean() > 0.5
    images_out = editor.decode(result.x0)
    assert images_out.shape == (1, 3, SIZE, SIZE) and images_out.min() >= 0 and images_out.max() <= 1
    with torch.no_grad():  # the pipeline's own decode of its latents
        z = pipeline._unpack_latents(pipe_latents, SIZE, SIZE, pipeline.vae_scale_factor)
        z = z * torch.tensor(pipeline.vae.config.latents_std).view(1, 16, 1, 1, 1) \
            + torch.tensor(pipeline.vae.config.latents_mean).view(1, 16, 1, 1, 1)
        pipe_images = pipeline.image_processor.postprocess(pipeline.vae.decode(z).sample[:, :, 0], output_type="pt")
    assert torch.allclose(images_out, pipe_images, atol=1e-3, rtol=0)


def test_unpatched_pipeline_with_a_1024_reference(editor, pipeline):
    """The pipeline as shipped: a 1024x1024 reference is used as given (4096 reference tokens). Our side
    reuses the pipeline's reference latents (VAE encoding is compared at 64x64 above; one 1024^2
    encode of the tiny video VAE costs ~7 s on 2 cores) and encodes the prompt with the 1024 image."""
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(5)),
                                            size=(1024, 1024), mode="bilinear", align_corners=False)
    image = (image * 255).round() / 255
    calls = []
    _run_pipeline(pipeline, image, steps=2, seed=1, guidance=1.0, calls=calls)
    kwargs, pipe_out = calls[0]
    assert kwargs["img_shapes"] == [[(1, 4, 4), (1, 64, 64)]] and kwargs["hidden_states"].shape[1] == TOKENS + 4096
    embeds, mask = editor.encode_prompts([PROMPT], image)
    assert torch.equal(kwargs["encoder_hidden_states"], embeds)
    cond = QwenImageEditCondition(
        prompt_embeds=embeds, prompt_mask=mask, negative_prompt_embeds=embeds[:, :0], negative_prompt_mask=mask[:, :0],
        reference_latents=kwargs["hidden_states"][:, TOKENS:], image_shapes=torch.tensor([[1, 4, 4], [1, 64, 64]]))
    v = editor.velocity(kwargs["hidden_states"][:, :TOKENS], kwargs["timestep"], cond)
    assert torch.allclose(v, pipe_out[:, :TOKENS], atol=1e-6, rtol=0)


def test_reference_of_another_size_gets_its_own_image_shape(images):
    small = QwenImageEditEditor(_cfg(resolution=32))
    cond = small.condition([PROMPT], images[:1])  # 64x64 reference, 32x32 output
    assert cond.image_shapes.tolist() == [[1, 2, 2], [1, 4, 4]] and cond.reference_latents.shape == (1, 16, 64)
    x = small.initial_noise(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = small.decode(sample(lambda xx, s: small.velocity(xx, s, cond), x, small.sigmas(2), "euler").x0)
    assert out.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="multiple of 16"):
        small.condition([PROMPT], images[:1, :, :40, :40])


def test_sigmas_are_qwen_images_shift_and_terminal_stretch(editor):
    c = editor.scheduler_config
    assert (c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift, c.shift_terminal) == \
        (256, 8192, 0.5, 0.9, 0.02)
    mu = 0.5 + (16 - 256) * 0.4 / (8192 - 256)  # 64x64 -> 16 target tokens
    e = torch.exp(torch.tensor(mu, dtype=torch.float64))
    shifted = e / (e + 1 / torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64) - 1)
    stretched = 1 - (1 - shifted) * (1 - 0.02) / (1 - shifted[-1])
    sigmas = editor.sigmas(4)
    assert torch.allclose(sigmas[:-1], stretched, atol=1e-12)
    assert sigmas[0] == pytest.approx(1, abs=1e-15) and sigmas[-2] == pytest.approx(0.02) and sigmas[-1] == 0
    for steps, tokens in [(6, 1024), (28, 4096), (2, 16)]:  # diffusers' scheduler on the same inputs
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(c)
        mu = pipeline_qwenimage_edit.calculate_shift(tokens, 256, 8192, 0.5, 0.9)
        scheduler.set_timesteps(sigmas=[1 - i / steps for i in range(steps)], mu=mu)
        ours = qwen_image_sigmas(steps, tokens, 256, 8192, 0.5, 0.9, 0.02)
        assert torch.allclose(ours, scheduler.sigmas.double(), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 steps"):
        stretch_shift_to_terminal(torch.ones(1, dtype=torch.float64), 0.02)


def test_true_cfg_rescales_to_the_conditional_norm():
    cond = torch.tensor([[[3.0, 4.0]]])
    uncond = torch.tensor([[[1.0, 0.0]]])
    out = true_cfg_with_norm_rescale(cond, uncond, 4.0)  # combined = (9, 16), rescaled to norm 5
    assert torch.allclose(out, torch.tensor([[[9.0, 16.0]]]) * 5 / (337 ** 0.5))


def test_prompts_of_different_lengths_are_padded_and_masked(editor, images):
    prompts = ["red", "turn the cat into a tiger and make the sky purple"]
    cond = editor.condition(prompts, images)
    lengths = cond.prompt_mask.sum(1)
    assert lengths[1] > lengths[0] and cond.prompt_mask.shape[1] == lengths[1]
    assert cond.prompt_embeds[0, lengths[0]:].abs().sum() == 0
    single = editor.condition(prompts[:1], images[:1])
    assert single.prompt_embeds.shape[1] == lengths[0]
    assert torch.allclose(single.prompt_embeds, cond.prompt_embeds[:1, :lengths[0]], atol=1e-4)
    x = editor.initial_noise(2, torch.Generator().manual_seed(2))
    with torch.no_grad():  # the padded, masked row gives the unpadded row's velocity
        both = editor.velocity(x, torch.tensor([0.6, 0.6]), cond)
        alone = editor.velocity(x[:1], torch.tensor([0.6]), single)
    assert torch.allclose(both[:1], alone, atol=1e-4)
    # conditions of different prompt lengths concatenate (padded to the longest)
    joined = QwenImageEditCondition.cat([single, cond.select([1])])
    assert joined.prompt_embeds.shape[1] == lengths[1] and joined.prompt_mask.sum(1).tolist() == lengths.tolist()
    # repeated (prompt, image) pairs are encoded once, identically
    repeated = editor.condition([PROMPT, PROMPT, PROMPT], images[[0, 0, 1]])
    assert torch.equal(repeated.prompt_embeds[0], repeated.prompt_embeds[1])
    assert not torch.equal(repeated.prompt_embeds[0], repeated.prompt_embeds[2])


def test_three_turn_rollout_with_cfg(images):
    editor = QwenImageEditEditor(_cfg(guidance_scale=3.0))
    chains = [["make it red", "add a hat", "zoom out"], ["remove the dog", "make it night", "add snow"]]
    r = rollout_chains(editor, images, chains, 2, SamplerConfig(method="dpm2", num_steps=2),
                       torch.Generator().manual_seed(0))
    assert len(r.turns) == 3 and r.group_ids.tolist() == [0, 0, 1, 1]
    for k, turn in enumerate(r.turns):
        assert turn.x0.shape == (4, TOKENS, 64) and turn.images.shape == (4, 3, SIZE, SIZE)
        assert turn.condition.negative_prompt_embeds.shape[0] == 4
        assert not torch.equal(turn.x0[0], turn.x0[1])
    for k in (1, 2):
        assert torch.allclose(r.turns[k].condition.reference_latents, editor.encode_images(r.turns[k - 1].images),
                              atol=1e-5)
    # the learner recomputes a turn's velocity from the stored condition
    turn = r.turns[1]
    with torch.no_grad():
        v = editor.velocity(turn.x0, torch.full((4,), 0.5), turn.condition)
    assert v.shape == turn.x0.shape and torch.isfinite(v).all()


def test_lora_uses_qwen_targets_and_trains_only_lora(path, images, tmp_path):
    editor = QwenImageEditEditor(_cfg())
    cfg = lora_config_for(editor, LoRAConfig(rank=4, alpha=8))
    assert cfg.target_modules == editor.default_lora_targets()
    lora.add_lora(editor.transformer, cfg)
    trainable = [n for n, p in editor.transformer.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 2 * 8 and all("lora_" in n and ".default." in n for n in trainable)  # 2 blocks

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
        with lora.adapters_disabled(editor.transformer):
            v_ref = editor.velocity(x, sigma, cond)
    assert (v_after - v_before).abs().max() > 1e-3
    assert torch.allclose(v_ref, v_before, atol=1e-6)
    assert all(torch.equal(p, base[n]) for n, p in editor.transformer.named_parameters() if "lora_" not in n)

    lora.save_lora_weights(editor, tmp_path)
    assert len(load_file(tmp_path / "pytorch_lora_weights.safetensors")) == len(trainable)
    pipe = QwenImageEditPipeline.from_pretrained(path)
    pipe.load_lora_weights(tmp_path)
    with torch.no_grad():
        v_pipe = pipe.transformer(hidden_states=torch.cat([x, cond.reference_latents], 1), timestep=sigma,
                                  encoder_hidden_states=cond.prompt_embeds, img_shapes=[[(1, 4, 4), (1, 4, 4)]] * 2,
                                  return_dict=False)[0][:, :TOKENS]
    assert torch.allclose(v_pipe, v_after, atol=1e-5)


def test_bfloat16_editor_equals_the_bfloat16_pipeline(path, images, own_size_reference):
    pipe = QwenImageEditPipeline.from_pretrained(path, dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    _run_pipeline(pipe, images[:1], steps=2, seed=0, guidance=1.0, calls=calls)
    kwargs, pipe_out = calls[1]
    editor = QwenImageEditEditor(_cfg(dtype="bfloat16"))
    cond = editor.condition([PROMPT], images[:1])
    assert cond.prompt_embeds.dtype == torch.bfloat16
    assert torch.equal(kwargs["encoder_hidden_states"], cond.prompt_embeds)
    same_reference = dataclasses.replace(cond, reference_latents=kwargs["hidden_states"][:, TOKENS:])
    x = kwargs["hidden_states"][:, :TOKENS].float()  # our sampler keeps float32 state
    with torch.no_grad():
        v = editor.velocity(x, kwargs["timestep"].float(), same_reference)
    assert v.dtype == torch.float32 and torch.equal(v, pipe_out[:, :TOKENS].float())


def test_load_editor_builds_qwen_image_edit():
    assert isinstance(load_editor(_cfg()), QwenImageEditEditor)
