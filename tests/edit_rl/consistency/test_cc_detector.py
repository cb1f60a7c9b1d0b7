"""Grounding DINO detection through the tiny build, loaded by name like the real checkpoint
(edit_rl/consistency/detector.py, edit_rl/models/tiny/grounding_dino.py)."""

import torch
from transformers import AutoProcessor, GroundingDinoImageProcessorPil

from edit_rl.consistency import GroundingDinoDetector, detection_prompt
from edit_rl.models import resolve_model
from edit_rl.models.tiny.grounding_dino import SPECIAL_IDS


def test_detection_prompt_matches_the_reference_format():
    assert detection_prompt(["A Cat.", "  red square "]) == "a cat . red square ."
    assert detection_prompt(["bench"]) == "bench ."


def test_tiny_build_has_the_hard_coded_bert_ids_and_a_pil_processor():
    folder = resolve_model("tiny/grounding-dino")
    processor = AutoProcessor.from_pretrained(folder, backend="pil")
    assert isinstance(processor.image_processor, GroundingDinoImageProcessorPil)
    for token, idx in SPECIAL_IDS.items():
        assert processor.tokenizer.convert_tokens_to_ids(token) == idx
    ids = processor.tokenizer("cat . dog ?")["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and 1012 in ids and 1029 in ids
    AutoProcessor.from_pretrained(folder)  # the default (torchvision) backend loads too


def test_boxes_are_clipped_pixels_of_each_image_and_thresholds_apply(tiny_detector):
    generator = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, size, dtype=torch.uint8, generator=generator)
              for size in [(3, 64, 64), (3, 48, 80)]]
    objects = [("red square", "blue circle"), ("cat",)]
    boxes = tiny_detector.detect(images, objects)
    assert [b.shape[1] for b in boxes] == [4, 4] and all(0 < len(b) <= 8 for b in boxes)

    # transformers' raw outputs for one image at a time: sigmoid max over text tokens > 0.35,
    # (cx, cy, w, h) -> corners scaled by (W, H, W, H), clipped to the image
    for image, names, got in zip(images, objects, boxes):
        proc = tiny_detector.processor
        inputs = proc(images=[image.permute(1, 2, 0).numpy()], text=[detection_prompt(names)],
                      return_tensors="pt")
        with torch.no_grad():
            out = tiny_detector.model(**inputs)
        keep = out.logits.sigmoid().amax(-1)[0] > 0.35
        cx, cy, w, h = out.pred_boxes[0, keep].unbind(-1)
        height, width = image.shape[1:]
        expected = torch.stack([(cx - w / 2) * width, (cy - h / 2) * height,
                                (cx + w / 2) * width, (cy + h / 2) * height], -1)
        expected = torch.minimum(expected.clamp(min=0), torch.tensor([width, height, width, height]))
        torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-4)

    strict = GroundingDinoDetector(tiny_detector.model, tiny_detector.processor, box_threshold=1.0)
    assert [len(b) for b in strict.detect(images, objects)] == [0, 0]


def test_one_forward_per_image_size_and_batching_changes_no_box(tiny_detector):
    generator = torch.Generator().manual_seed(2)
    images = [torch.randint(0, 256, size, dtype=torch.uint8, generator=generator)
              for size in [(3, 64, 64), (3, 48, 80), (3, 64, 64), (3, 64, 64)]]
    objects = [("cat",), ("dog",), ("red square", "a purple bag"), ("bench",)]
    forwards = []
    handle = tiny_detector.model.register_forward_hook(lambda *args: forwards.append(1))
    try:
        batched = tiny_detector.detect(images, objects)
        assert len(forwards) == 2  # the three 64x64 images together, the 48x80 one alone
    finally:
        handle.remove()
    for image, names, got in zip(images, objects, batched):
        torch.testing.assert_close(got, tiny_detector.detect([image], [names])[0], atol=1e-4, rtol=1e-4)
