"""Our FLUX.1-Kontext editor against diffusers' FluxKontextPipeline on the tiny build."""

import pytest
import torch

from edit_rl.editors.flux_kontext import FluxKontextCondition, FluxKontextEditor
from edit_rl.editors.images import pil_to_tensor, tensor_to_pil
from edit_rl.editors.load import load_editor
from edit_rl.flow.sampling import sample

PROMPT = "make the sky purple"


@pytest.fixture
def recorded_pipeline_calls(pipeline):
    """Every transformer call the pipeline makes: (kwargs, output)."""
    calls = []
    original = pipeline.transformer.forward

    def recording_forward(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((kwargs, out[0]))
        return out

    pipeline.transformer.forward = recording_forward
    yield calls
    del pipeline.transformer.forward


def test_transformer_inputs_and_velocity_equal_the_pipelines(
        shared_editor, pipeline, run_pipeline, recorded_pipeline_calls, input_images):
    image = input_images[:1]
    run_pipeline(pipeline, image, PROMPT, steps=3, seed=0, output_type="latent")
    assert len(recorded_pipeline_calls) == 3
    kwargs, pipe_out = recorded_pipeline_calls[0]

    cond = shared_editor.condition([PROMPT], image)
    x = shared_editor.initial_noise(1, torch.Generator().manual_seed(0))
    sigmas = shared_editor.sigmas(3)
    assert x.shape == (1, 16, 64)  # (64/16)^2 target tokens of 2x2 x 16 channels
    assert torch.equal(kwargs["hidden_states"], torch.cat([x, cond.reference_latents], dim=1))
    assert torch.equal(kwargs["encoder_hidden_states"], cond.prompt_embeds)
    assert torch.equal(kwargs["pooled_projections"], cond.pooled_prompt_embeds)
    assert torch.equal(kwargs["img_ids"], cond.image_ids)
    assert torch.equal(kwargs["txt_ids"], torch.zeros(16, 3))
    assert kwargs["guidance"].tolist() == [2.5]
    pipe_sigmas = torch.stack([k["timestep"] for k, _ in recorded_pipeline_calls]).flatten().double()
    assert torch.allclose(pipe_sigmas, sigmas[:-1], atol=1e-6)

    v = shared_editor.velocity(x, sigmas[:1].float(), cond)
    assert v.shape == x.shape
    assert torch.allclose(v, pipe_out[:, :16], atol=1e-6, rtol=0)
    assert v.abs().mean() > 0.1  # the tiny model is not degenerate


def test_condition_ids_put_target_first_and_mark_the_reference(shared_editor, input_images):
    cond = shared_editor.condition([PROMPT, "add a hat"], input_images)
    assert cond.reference_latents.shape == (2, 16, 64)
    assert cond.prompt_embeds.shape == (2, 16, 32) and cond.pooled_prompt_embeds.shape == (2, 32)
    assert cond.image_ids.shape == (32, 3)
    assert cond.image_ids[:16, 0].eq(0).all() and cond.image_ids[16:, 0].eq(1).all()
    assert torch.equal(cond.image_ids[:16, 1:], cond.image_ids[16:, 1:])


def test_full_euler_edit_equals_the_pipeline(shared_editor, pipeline, run_pipeline, input_images):
    image = input_images[1:]
    pipe_latents = run_pipeline(pipeline, image, PROMPT, steps=4, seed=3, output_type="latent")
    pipe_images = run_pipeline(pipeline, image, PROMPT, steps=4, seed=3, output_type="pt")

    cond = shared_editor.condition([PROMPT], image)
    x = shared_editor.initial_noise(1, torch.Generator().manual_seed(3))
    with torch.no_grad():
        result = sample(lambda xx, s: shared_editor.velocity(xx, s, cond), x, shared_editor.sigmas(4), "euler")
    assert torch.allclose(result.x0, pipe_latents, atol=1e-5, rtol=0)
    assert result.x0.abs().mean() > 0.1
    images = shared_editor.decode(result.x0)
    assert images.shape == (1, 3, 64, 64)
    assert images.min() >= 0 and images.max() <= 1
    assert torch.allclose(images, pipe_images, atol=1e-5, rtol=0)


def test_sigmas_are_kontexts_dynamic_shift_for_the_token_count(shared_editor):
    # 64x64 -> 16 target tokens: mu = 0.5 + (16 - 256) * 0.65 / 3840 = 0.459375
    sigmas = shared_editor.sigmas(4)
    mu = 0.5 + (16 - 256) * 0.65 / 3840
    linear = torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64)
    expected = torch.cat([torch.exp(torch.tensor(mu)) / (torch.exp(torch.tensor(mu)) + 1 / linear - 1),
                          torch.zeros(1, dtype=torch.float64)])
    assert torch.allclose(sigmas, expected, atol=1e-12)


def test_explicit_output_size_and_a_reference_of_another_size(tiny_cfg, input_images):
    editor = FluxKontextEditor(tiny_cfg(resolution=32))
    cond = editor.condition([PROMPT], input_images[:1])  # 64x64 reference, 32x32 output
    assert cond.image_ids.shape == (4 + 16, 3)
    assert cond.image_ids[:4, 1:].max() == 1 and cond.image_ids[4:, 1:].max() == 3
    x = editor.initial_noise(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        images = editor.decode(sample(lambda xx, s: editor.velocity(xx, s, cond), x, editor.sigmas(2), "euler").x0)
    assert images.shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="multiple of 16"):
        editor.condition([PROMPT], input_images[:1, :, :40, :40])


def test_repeated_prompts_are_encoded_once_with_the_same_result(shared_editor):
    embeds, pooled = shared_editor.encode_prompts(["a", "b", "a"])
    single, single_pooled = shared_editor.encode_prompts(["a"])
    assert torch.equal(embeds[0], embeds[2]) and not torch.equal(embeds[0], embeds[1])
    assert torch.allclose(embeds[:1], single, atol=1e-6) and torch.allclose(pooled[:1], single_pooled, atol=1e-6)


def test_condition_select_cat_repeat(shared_editor, input_images):
    cond = shared_editor.condition([PROMPT, "add a hat"], input_images)
    assert cond.batch_size == 2
    picked = cond.select([1])
    assert torch.equal(picked.prompt_embeds, cond.prompt_embeds[1:]) and picked.image_ids is cond.image_ids
    joined = FluxKontextCondition.cat([cond.select([1]), cond.select([0])])
    assert torch.equal(joined.reference_latents, cond.reference_latents.flip(0))
    repeated = cond.repeat_interleave(3)
    assert repeated.batch_size == 6 and torch.equal(repeated.pooled_prompt_embeds[3], cond.pooled_prompt_embeds[1])
    bad = FluxKontextCondition(cond.prompt_embeds, cond.pooled_prompt_embeds, cond.reference_latents,
                               cond.image_ids + 1)
    with pytest.raises(ValueError, match="image_ids"):
        FluxKontextCondition.cat([cond, bad])


def test_velocity_batch_rows_are_independent(shared_editor, input_images):
    cond = shared_editor.condition([PROMPT, "add a hat"], input_images)
    x = shared_editor.initial_noise(2, torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.9, 0.4])
    with torch.no_grad():
        both = shared_editor.velocity(x, sigma, cond)
        second = shared_editor.velocity(x[1:], sigma[1:], cond.select([1]))
    assert torch.allclose(both[1:], second, atol=1e-5)


def test_load_editor_dispatches_on_family(tiny_cfg):
    assert isinstance(load_editor(tiny_cfg()), FluxKontextEditor)
    with pytest.raises(NotImplementedError, match="omnigen2"):
        load_editor(tiny_cfg(family="omnigen2"))  # a family not registered (qwen_image_edit now is)


def test_pil_round_trip_at_an_explicit_size(input_images):
    pils = tensor_to_pil(input_images)
    assert pils[0].size == (64, 64)
    back = pil_to_tensor(pils, 64)
    assert back.shape == (2, 3, 64, 64) and (back - input_images).abs().max() <= 0.5 / 255 + 1e-6
    assert pil_to_tensor(pils, 32).shape == (2, 3, 32, 32)


def test_bfloat16_editor_equals_the_bfloat16_pipeline(tiny_cfg, tiny_path, run_pipeline, input_images):
    from diffusers import FluxKontextPipeline

    pipe = FluxKontextPipeline.from_pretrained(tiny_path, dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    original = pipe.transformer.forward
    pipe.transformer.forward = lambda *a, **k: calls.append((k, original(*a, **k)[0])) or (calls[-1][1],)
    run_pipeline(pipe, input_images[:1], PROMPT, steps=2, seed=0, output_type="latent")
    kwargs, pipe_out = calls[1]

    editor = FluxKontextEditor(tiny_cfg(dtype="bfloat16"))
    assert editor.transformer.dtype == torch.bfloat16
    cond = editor.condition([PROMPT], input_images[:1])
    assert torch.equal(kwargs["encoder_hidden_states"], cond.prompt_embeds)
    assert torch.equal(kwargs["hidden_states"][:, 16:], cond.reference_latents)
    x = kwargs["hidden_states"][:, :16].float()  # our sampler keeps float32 state
    with torch.no_grad():
        v = editor.velocity(x, kwargs["timestep"].float(), cond)
    assert v.dtype == torch.float32
    assert torch.equal(v, pipe_out[:, :16].float())
