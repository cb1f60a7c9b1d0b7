"""LoRA on the tiny FLUX.1-Kontext transformer: trainable set, adapters, soft update, diffusers format."""

import pytest
import torch
from safetensors.torch import load_file

from edit_rl.config.schema import LoRAConfig
from edit_rl.editors import lora
from edit_rl.flow.sampling import sample

PROMPT = "turn the cat into a tiger"
CFG = LoRAConfig(rank=4, alpha=8)
# 1 double block x 8 projections + 2 single blocks x (to_q, to_k, to_v): 14 LoRA layers
NUM_LORA_LAYERS = 14


def _randomize_(editor, adapter: str, seed: int, scale: float = 0.3) -> None:
    """Stand-in for training: random LoRA weights (B != 0) so the adapter changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in lora.adapter_parameters(editor.transformer, adapter):
            p.copy_(torch.randn(p.shape, generator=g) * scale)


@pytest.fixture
def lora_editor(editor):
    lora.add_lora(editor.transformer, CFG)
    return editor


@pytest.fixture
def inputs(shared_editor, input_images):
    cond = shared_editor.condition([PROMPT, PROMPT], input_images)
    x = shared_editor.initial_noise(2, torch.Generator().manual_seed(11))
    return x, torch.tensor([0.8, 0.3]), cond


def _trainable_names(transformer) -> list[str]:
    return [n for n, p in transformer.named_parameters() if p.requires_grad]


def test_only_the_default_adapters_lora_weights_train(lora_editor):
    names = _trainable_names(lora_editor.transformer)
    assert len(names) == 2 * NUM_LORA_LAYERS
    assert all(".lora_A.default." in n or ".lora_B.default." in n for n in names)
    assert [p for p in lora.trainable_parameters(lora_editor.transformer)] == \
        [p for p in lora_editor.transformer.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for _, p in lora.adapter_parameters(lora_editor.transformer, "old"))
    # the invariant survives every switch
    with lora.active_adapter(lora_editor.transformer, "old"):
        pass
    with lora.adapters_disabled(lora_editor.transformer):
        pass
    assert _trainable_names(lora_editor.transformer) == names


def test_new_adapters_start_as_the_base_and_disabled_adapters_give_the_base(
        shared_editor, lora_editor, inputs):
    x, sigma, cond = inputs
    with torch.no_grad():
        base = shared_editor.velocity(x, sigma, cond)
        assert torch.allclose(lora_editor.velocity(x, sigma, cond), base, atol=1e-6)  # B = 0 at init
        _randomize_(lora_editor, "default", seed=1)
        adapted = lora_editor.velocity(x, sigma, cond)
        with lora.adapters_disabled(lora_editor.transformer):
            reference = lora_editor.velocity(x, sigma, cond)
    assert (adapted - base).abs().max() > 0.05
    assert torch.allclose(reference, base, atol=1e-6)


def test_old_and_default_are_separate_and_gradients_reach_only_default(shared_editor, lora_editor, inputs):
    x, sigma, cond = inputs
    _randomize_(lora_editor, "default", seed=1)
    with torch.no_grad():
        base = shared_editor.velocity(x, sigma, cond)
        with lora.active_adapter(lora_editor.transformer, "old"):
            v_old = lora_editor.velocity(x, sigma, cond)
    assert torch.allclose(v_old, base, atol=1e-6)  # old still holds the initial (B = 0) copy

    v = lora_editor.velocity(x, sigma, cond)
    assert not torch.allclose(v, v_old, atol=1e-3)
    (v - v_old).pow(2).mean().backward()
    grads = {n: p.grad for n, p in lora.adapter_parameters(lora_editor.transformer, "default")}
    assert all(g is not None for g in grads.values()) and any(g.abs().sum() > 0 for g in grads.values())
    assert all(p.grad is None for _, p in lora.adapter_parameters(lora_editor.transformer, "old"))
    assert all(p.grad is None for n, p in lora_editor.transformer.named_parameters() if "lora_" not in n)


def test_soft_update_arithmetic_and_copy(lora_editor, inputs):
    x, sigma, cond = inputs
    _randomize_(lora_editor, "default", seed=1)
    _randomize_(lora_editor, "old", seed=2)
    old = [p.detach().clone() for _, p in lora.adapter_parameters(lora_editor.transformer, "old")]
    new = [p.detach().clone() for _, p in lora.adapter_parameters(lora_editor.transformer, "default")]
    lora.soft_update_old_(lora_editor.transformer, decay=0.3)
    for (_, p), o, n in zip(lora.adapter_parameters(lora_editor.transformer, "old"), old, new):
        assert torch.allclose(p, 0.3 * o + 0.7 * n, atol=1e-7)
    after = lora.adapter_parameters(lora_editor.transformer, "default")
    assert all(torch.equal(p, n) for (_, p), n in zip(after, new))  # theta untouched

    lora.copy_default_to_old_(lora_editor.transformer)
    with torch.no_grad():
        v = lora_editor.velocity(x, sigma, cond)
        with lora.active_adapter(lora_editor.transformer, "old"):
            v_old = lora_editor.velocity(x, sigma, cond)
    assert torch.equal(v, v_old)


def test_gradient_checkpointing_changes_nothing_numerically(lora_editor, inputs):
    x, sigma, cond = inputs
    _randomize_(lora_editor, "default", seed=3)
    params = lora.trainable_parameters(lora_editor.transformer)

    def loss_and_grads():
        for p in params:
            p.grad = None
        loss = lora_editor.velocity(x, sigma, cond).pow(2).mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in params]

    loss_plain, grads_plain = loss_and_grads()
    lora.set_gradient_checkpointing(lora_editor.transformer, True)
    assert lora_editor.transformer.is_gradient_checkpointing
    loss_ckpt, grads_ckpt = loss_and_grads()
    assert torch.allclose(loss_plain, loss_ckpt, atol=1e-7)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_plain, grads_ckpt))


def test_adapter_state_dict_round_trip_into_old(lora_editor, inputs):
    x, sigma, cond = inputs
    _randomize_(lora_editor, "default", seed=4)
    state = lora.adapter_state_dict(lora_editor.transformer, "default")
    assert len(state) == 2 * NUM_LORA_LAYERS and not any("default" in k for k in state)
    lora.load_adapter_state_dict_(lora_editor.transformer, state, "old")
    with torch.no_grad():
        with lora.active_adapter(lora_editor.transformer, "old"):
            v_old = lora_editor.velocity(x, sigma, cond)
        assert torch.equal(v_old, lora_editor.velocity(x, sigma, cond))
    assert len(_trainable_names(lora_editor.transformer)) == 2 * NUM_LORA_LAYERS


def test_saved_adapter_loads_into_diffusers_and_gives_the_same_edit(
        lora_editor, tiny_path, run_pipeline, input_images, tmp_path):
    from diffusers import FluxKontextPipeline

    _randomize_(lora_editor, "default", seed=5)
    _randomize_(lora_editor, "old", seed=6)  # must not leak into the saved file
    lora.save_lora_weights(lora_editor, tmp_path)
    saved = load_file(tmp_path / "pytorch_lora_weights.safetensors")
    assert len(saved) == 2 * NUM_LORA_LAYERS
    assert all(k.startswith("transformer.") and (".lora_A.weight" in k or ".lora_B.weight" in k) for k in saved)

    pipe = FluxKontextPipeline.from_pretrained(tiny_path)
    pipe.set_progress_bar_config(disable=True)
    image = input_images[:1]
    base_latents = run_pipeline(pipe, image, PROMPT, steps=3, seed=9, output_type="latent")
    pipe.load_lora_weights(tmp_path)
    pipe_latents = run_pipeline(pipe, image, PROMPT, steps=3, seed=9, output_type="latent")

    cond = lora_editor.condition([PROMPT], image)
    x = lora_editor.initial_noise(1, torch.Generator().manual_seed(9))
    with torch.no_grad():
        ours = sample(lambda xx, s: lora_editor.velocity(xx, s, cond), x, lora_editor.sigmas(3), "euler").x0
        v_ours = lora_editor.velocity(x, torch.ones(1), cond)
        v_pipe = pipe.transformer(hidden_states=torch.cat([x, cond.reference_latents], 1), timestep=torch.ones(1),
                                  guidance=torch.full((1,), 2.5), pooled_projections=cond.pooled_prompt_embeds,
                                  encoder_hidden_states=cond.prompt_embeds, txt_ids=torch.zeros(16, 3),
                                  img_ids=cond.image_ids, return_dict=False)[0][:, :16]
    assert (pipe_latents - base_latents).abs().max() > 0.05  # the adapter matters
    assert torch.allclose(v_ours, v_pipe, atol=1e-5, rtol=0)  # incl. alpha / rank = 2 from the metadata
    assert torch.allclose(ours, pipe_latents, atol=1e-5, rtol=0)


def test_rollout_dtype_casts_every_adapter_and_a_weight_sync_lands_in_it(lora_editor, inputs):
    # lora.rollout_dtype=bfloat16 on a rollout worker: both adapters in bf16; the learner's float32
    # state is copied in and rounded, and sampling gives nearly the float32 adapter's velocity.
    x, sigma, cond = inputs
    _randomize_(lora_editor, "default", seed=5)
    state = lora.adapter_state_dict(lora_editor.transformer, "default")
    with torch.no_grad():
        v_fp32 = lora_editor.velocity(x, sigma, cond)
    lora.cast_adapters_(lora_editor.transformer, torch.bfloat16)
    for adapter in ("default", "old"):
        assert {p.dtype for _, p in lora.adapter_parameters(lora_editor.transformer, adapter)} == {torch.bfloat16}
    lora.load_adapter_state_dict_(lora_editor.transformer, state, "old")
    old = dict(lora.adapter_parameters(lora_editor.transformer, "old"))
    assert all(p.dtype == torch.bfloat16 for p in old.values())
    assert torch.equal(lora.adapter_state_dict(lora_editor.transformer, "old")[next(iter(state))],
                       state[next(iter(state))].to(torch.bfloat16))
    with torch.no_grad(), lora.active_adapter(lora_editor.transformer, "old"):
        v_bf16 = lora_editor.velocity(x, sigma, cond)
    assert v_bf16.dtype == v_fp32.dtype and not torch.equal(v_bf16, v_fp32)
    torch.testing.assert_close(v_bf16, v_fp32, atol=5e-2, rtol=5e-2)
