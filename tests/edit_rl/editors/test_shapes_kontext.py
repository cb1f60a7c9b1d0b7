"""The shapes-world miniature FLUX.1-Kontext: Kontext's adapter on 4 x 4 pixel patches, word-level text."""

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from edit_rl.config.schema import EditorConfig, LoRAConfig, SamplerConfig
from edit_rl.editors import lora
from edit_rl.editors.flux_kontext import FluxKontextCondition, FluxKontextEditor
from edit_rl.editors.load import load_editor
from edit_rl.editors.lora_targets import lora_config_for
from edit_rl.editors.pixel_patches import patchify, unpatchify
from edit_rl.editors.rollout import rollout_chains
from edit_rl.editors.shapes_kontext import ShapesKontextEditor
from edit_rl.editors.word_text import UNK, split_words
from edit_rl.models.registry import REPO_ROOT, resolve_model
from edit_rl.synthetic.splits import make_split

SIZE = 32
TOKENS = 64  # (32 / 4)^2 patches
PROMPTS = ["Add a small red circle to the left of the large blue square.",
           "Add a small red circle to the right of the large blue square."]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(name: str = "tiny/shapes-kontext", dtype: str = "float32") -> EditorConfig:
    return EditorConfig(family="shapes_kontext", name_or_path=name, dtype=dtype, resolution=SIZE,
                        gradient_checkpointing=False)


@pytest.fixture(scope="module")
def editor() -> ShapesKontextEditor:
    ed = load_editor(_cfg())
    assert isinstance(ed, ShapesKontextEditor)
    return ed


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def test_patch_tokens_hold_4x4_pixel_patches_and_invert(images):
    tokens = patchify(images)
    assert tokens.shape == (2, TOKENS, 48)
    # token (i, j) = (1, 2) in row-major order holds exactly pixels rows 4..7, cols 8..11
    assert torch.equal(tokens[:, 1 * 8 + 2].sort(dim=-1).values,
                       images[:, :, 4:8, 8:12].reshape(2, -1).sort(dim=-1).values)
    assert torch.equal(unpatchify(tokens, SIZE, SIZE), images)


def test_velocity_is_the_kontext_call_on_target_then_reference_tokens(editor, images):
    assert ShapesKontextEditor.velocity is FluxKontextEditor.velocity  # the real adapter's code
    cond = editor.condition(PROMPTS, images)
    assert isinstance(cond, FluxKontextCondition)
    assert torch.equal(cond.reference_latents, patchify(2 * images - 1))
    assert cond.image_ids.shape == (2 * TOKENS, 3)
    assert cond.image_ids[:TOKENS, 0].eq(0).all() and cond.image_ids[TOKENS:, 0].eq(1).all()
    assert torch.equal(cond.image_ids[:TOKENS, 1:], cond.image_ids[TOKENS:, 1:])
    assert cond.image_ids[9].tolist() == [0, 1, 1] and cond.image_ids[TOKENS + 63].tolist() == [1, 7, 7]

    calls = []
    original = editor.transformer.forward

    def recording_forward(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((kwargs, out[0]))
        return out

    editor.transformer.forward = recording_forward
    try:
        x = editor.initial_noise(2, torch.Generator().manual_seed(1))
        v = editor.velocity(x, torch.tensor([0.7, 0.2]), cond)
    finally:
        del editor.transformer.forward
    ((kwargs, full),) = calls
    assert torch.equal(kwargs["hidden_states"], torch.cat([x, cond.reference_latents], dim=1))
    assert torch.equal(kwargs["img_ids"], cond.image_ids)
    assert torch.equal(kwargs["txt_ids"], torch.zeros(16, 3))
    assert kwargs["guidance"].tolist() == [2.5, 2.5]
    assert full.shape == (2, 2 * TOKENS, 48)
    assert torch.equal(v, full[:, :TOKENS])  # prediction sliced to the target tokens
    assert not torch.allclose(v[0], v[1])


def test_word_order_reaches_the_condition_and_the_vocabulary_covers_the_world(editor):
    seq, pooled = editor.encode_prompts(PROMPTS)
    assert seq.shape == (2, 16, 128) and pooled.shape == (2, 128)
    assert not torch.allclose(seq[0], seq[1])  # "left" vs "right": one word differs
    ids, mask = editor.tokenizer(["Remove the large zebra."])
    assert ids[0, :4].tolist()[3] == editor.tokenizer.index[UNK] and mask[0].sum() == 4
    for chain in make_split("train", 100):
        for text in chain.instructions:
            words = split_words(text)
            assert len(words) <= editor.tokenizer.max_length
            assert all(w in editor.tokenizer.index for w in words), text


def test_sigmas_are_kontexts_shifted_grid_for_64_tokens(editor):
    sigmas = editor.sigmas(8)
    assert editor.num_target_tokens == TOKENS
    assert sigmas.shape == (9,) and sigmas[0] == 1 and sigmas[-1] == 0
    mu = 0.5 + (TOKENS - 256) * (1.15 - 0.5) / (4096 - 256)
    # linear grid point 4 of 8 is 0.5: sigma = e^mu / (e^mu + 1 / 0.5 - 1)
    assert sigmas[4].item() == pytest.approx(math.exp(mu) / (math.exp(mu) + 1), rel=1e-12)


def test_save_and_load_round_trip(editor, images, tmp_path):
    cond = editor.condition(PROMPTS, images)
    x = editor.initial_noise(2, torch.Generator().manual_seed(2))
    sigma = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        v = editor.velocity(x, sigma, cond)
    editor.save_pretrained(tmp_path / "fp32")
    editor.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    assert {p.name for p in (tmp_path / "fp16").iterdir()} == {"transformer", "text_encoder", "tokenizer", "scheduler"}
    weights = load_file(tmp_path / "fp16" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.float16}
    assert all(p.dtype == torch.float32 for p in editor.transformer.parameters())  # the editor is untouched
    for folder, tol in (("fp32", 0.0), ("fp16", 2e-2)):
        again = load_editor(_cfg(str(tmp_path / folder)))
        assert again.tokenizer == editor.tokenizer
        c2 = again.condition(PROMPTS, images)
        with torch.no_grad():
            assert torch.allclose(again.velocity(x, sigma, c2), v, atol=tol, rtol=0)


def test_shipped_name_resolves_to_the_repo_folder():
    assert Path(resolve_model("shapes/base")) == REPO_ROOT / "checkpoints" / "shapes-base"


def test_rollout_chains_runs_unchanged(editor):
    inputs = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    chains = [["Remove the large red circle.", "Change the background to black."],
              ["Make the small blue square large.", "Remove the large blue square."]]
    sampler = SamplerConfig(method="dpm2", num_steps=3)
    r = rollout_chains(editor, inputs, chains, 2, sampler, torch.Generator().manual_seed(0))
    assert len(r.turns) == 2
    for turn in r.turns:
        assert turn.images.shape == (4, 3, SIZE, SIZE) and turn.x0.shape == (4, TOKENS, 48)
        assert turn.images.min() >= 0 and turn.images.max() <= 1
    assert torch.equal(r.turns[1].condition.reference_latents, editor.encode_images(r.turns[0].images))
    assert torch.allclose(editor.decode(r.turns[1].x0), r.turns[1].images)


def test_lora_trains_only_lora_parameters(images):
    ed = load_editor(_cfg())
    cfg = lora_config_for(ed, LoRAConfig(rank=4, alpha=8))
    assert cfg.target_modules == list(LoRAConfig().target_modules)  # FLUX.1's attention projections
    cond = ed.condition(PROMPTS, images)
    x = ed.initial_noise(2, torch.Generator().manual_seed(4))
    sigma = torch.tensor([0.6, 0.3])
    with torch.no_grad():
        base = ed.velocity(x, sigma, cond)
    lora.add_lora(ed.transformer, cfg)
    trainable = [n for n, p in ed.transformer.named_parameters() if p.requires_grad]
    # 3 double blocks x 8 projections + 3 single blocks x (to_q, to_k, to_v), A and B each
    assert len(trainable) == 2 * 33 and all(".lora_A.default." in n or ".lora_B.default." in n for n in trainable)
    assert not any(p.requires_grad for p in ed.text_encoder.parameters())
    with torch.no_grad():
        assert torch.equal(ed.velocity(x, sigma, cond), base)  # B = 0: starts as the base
    before = {n: p.detach().clone() for n, p in ed.transformer.named_parameters()}
    # Adam: every parameter with a non-zero gradient moves by ~lr (the text stream's are tiny)
    optimizer = torch.optim.Adam(lora.trainable_parameters(ed.transformer), lr=1e-2)
    for _ in range(2):  # B moves on step 1 (A's gradient is 0 while B = 0), then A too
        optimizer.zero_grad()
        ed.velocity(x, sigma, cond).square().mean().backward()
        optimizer.step()
    changed = {n for n, p in ed.transformer.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(trainable)
    with torch.no_grad():
        assert not torch.allclose(ed.velocity(x, sigma, cond), base)
