"""EdiVal-CC content consistency of image pairs, batched (EdiVal ``detector/consistency_detector.py``
``evaluate_consistency`` and ``eval.py``; MT-EditFlow appendix D, eqs. 12-16).

For a pair (source, target) and the objects of its turn:

* object term: the unchanged objects are detected in the SOURCE only; each box is cropped from
  both images and scored with :func:`~edit_rl.consistency.similarity.object_similarity`; the term
  is the mean over detections, 0.0 if nothing was detected, None if the turn lists no unchanged
  object (reference ``_calculate_object_consistency``);
* background term: all objects are detected in BOTH images, the union of the boxes is masked, and
  :func:`~edit_rl.consistency.similarity.masked_global_cosine` compares the full images' patch
  tokens weighted by :func:`~edit_rl.consistency.similarity.patch_weights`. None on turns that
  change the background (``check_background`` False) and, as in the reference, when the turn
  lists no object at all;
* CC: :func:`~edit_rl.consistency.similarity.combine_cc`, the mean of the terms present.

On a background-change turn the reference ``eval.py`` skips BOTH terms (the turn contributes
nothing to the benchmark's CC); here the object term is still computed and CC is the object term
alone, so the training reward has a value for that turn. :func:`benchmark_cc` reproduces the
reference's aggregation, skipped turns included.

Pairings (:func:`pair_indices`): "consecutive" is MT-EditFlow's training reward (ref vs T1,
T1 vs T2, T2 vs T3; appendix D); "reference" is the EdiVal benchmark (ref vs turn t). The
objects and flag of a turn must match the pairing: EdiVal's CSV lists, per turn, the objects
unchanged since the REFERENCE and ``bg_consistency`` False from the first background change on.

All detections of a call go to the detector in one batch and all crops and full images to the
feature extractor in one batch (each chunks them into forward passes of its batch size).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Optional, get_args

import torch
from torch import Tensor

from edit_rl.consistency.images import ImageLike, crop_box, resize_square, to_uint8_chw
from edit_rl.consistency.interfaces import Detector, FeatureExtractor
from edit_rl.consistency.similarity import (
    background_mask,
    combine_cc,
    masked_global_cosine,
    mean_or_none,
    object_similarity,
    patch_weights,
)

Pairing = Literal["consecutive", "reference"]
PAIRINGS: tuple[str, ...] = get_args(Pairing)


@dataclass(frozen=True)
class TurnSpec:
    """What CC checks for one turn's pair: objects that must not change, every object in the scene
    (their boxes are cut out of the background), and whether the background must not change
    (False on background-change turns)."""

    unchanged_objects: tuple[str, ...]
    all_objects: tuple[str, ...]
    check_background: bool


@dataclass(frozen=True)
class PairSpec:
    """One image pair to score; both images must have the same size."""

    source: ImageLike
    target: ImageLike
    turn: TurnSpec


@dataclass(frozen=True)
class Chain:
    """A reference image and its T turn outputs (T + 1 images) with the T turns' specs."""

    images: Sequence[ImageLike]
    turns: Sequence[TurnSpec]


@dataclass(frozen=True)
class PairConsistency:
    """EdiVal-CC of one pair. Scores are DINOv3 cosines in [-1, 1]; None where not measured.
    Boxes are float (K, 4) (x1, y1, x2, y2) pixels of the images as scored (after the resize to
    ``image_size``): ``object_boxes`` the unchanged objects found in the source (one entry of
    ``object_scores`` each), ``background_boxes`` all objects found in source then target."""

    object_score: Optional[float]
    object_scores: tuple[float, ...]
    background_score: Optional[float]
    cc: Optional[float]
    object_boxes: Tensor
    background_boxes: Tensor
    check_background: bool


def pair_indices(num_turns: int, pairing: Pairing) -> list[tuple[int, int]]:
    """Image indices (source, target) of each turn's pair, image 0 being the reference:
    "consecutive" (k-1, k) (MT-EditFlow appendix D, eqs. 12-16); "reference" (0, k) (EdiVal)."""
    if num_turns < 1:
        raise ValueError(f"num_turns must be >= 1, got {num_turns}")
    if pairing == "consecutive":
        return [(k - 1, k) for k in range(1, num_turns + 1)]
    if pairing == "reference":
        return [(0, k) for k in range(1, num_turns + 1)]
    raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")


class EdivalCC:
    """EdiVal-CC over batches of pairs with any detector and feature extractor."""

    def __init__(self, detector: Detector, features: FeatureExtractor,
                 image_size: Optional[int] = 512) -> None:
        self.detector = detector
        self.features = features
        self.image_size = image_size

    def _prepare(self, image: ImageLike) -> Tensor:
        image = to_uint8_chw(image)
        return image if self.image_size is None else resize_square(image, self.image_size)

    def score_chains(self, chains: Sequence[Chain], pairing: Pairing) -> list[list[PairConsistency]]:
        """Per chain, the T pairs of ``pair_indices(T, pairing)`` in turn order, all chains scored
        in one :meth:`score_pairs` call."""
        pairs: list[PairSpec] = []
        for chain in chains:
            if len(chain.images) != len(chain.turns) + 1:
                raise ValueError(f"a chain of {len(chain.turns)} turns needs {len(chain.turns) + 1} "
                                 f"images (reference first), got {len(chain.images)}")
            pairs += [PairSpec(chain.images[s], chain.images[t], turn)
                      for (s, t), turn in zip(pair_indices(len(chain.turns), pairing), chain.turns)]
        results = self.score_pairs(pairs)
        out, start = [], 0
        for chain in chains:
            out.append(results[start:start + len(chain.turns)])
            start += len(chain.turns)
        return out

    def score_pairs(self, pairs: Sequence[PairSpec]) -> list[PairConsistency]:
        """EdiVal-CC of every pair (see the module docstring)."""
        images = [(self._prepare(p.source), self._prepare(p.target)) for p in pairs]
        for i, (source, target) in enumerate(images):
            if source.shape != target.shape:
                raise ValueError(f"pair {i}: source {tuple(source.shape)} and target "
                                 f"{tuple(target.shape)} differ in size")
        object_boxes, background_boxes = self._detect(pairs, images)
        object_scores, background_scores = self._similarities(pairs, images, object_boxes, background_boxes)
        results = []
        for i, pair in enumerate(pairs):
            if pair.turn.unchanged_objects:
                object_score: Optional[float] = mean_or_none(object_scores[i]) if object_scores[i] else 0.0
            else:
                object_score = None
            results.append(PairConsistency(
                object_score=object_score, object_scores=tuple(object_scores[i]),
                background_score=background_scores[i], cc=combine_cc(object_score, background_scores[i]),
                object_boxes=object_boxes[i], background_boxes=background_boxes[i],
                check_background=pair.turn.check_background))
        return results

    def _detect(self, pairs: Sequence[PairSpec],
                images: Sequence[tuple[Tensor, Tensor]]) -> tuple[list[Tensor], list[Tensor]]:
        """One detector call: unchanged objects in each source; all objects in both images of each
        pair whose background is checked. Pairs without such a request get (0, 4) boxes."""
        requests: list[tuple[str, int]] = []
        det_images: list[Tensor] = []
        det_objects: list[tuple[str, ...]] = []
        for i, (pair, (source, target)) in enumerate(zip(pairs, images)):
            if pair.turn.unchanged_objects:
                requests.append(("object", i))
                det_images.append(source)
                det_objects.append(tuple(pair.turn.unchanged_objects))
            if _checks_background(pair.turn):
                requests += [("background", i), ("background", i)]
                det_images += [source, target]
                det_objects += [tuple(pair.turn.all_objects)] * 2
        found = self.detector.detect(det_images, det_objects) if det_images else []
        object_boxes = [torch.zeros(0, 4) for _ in pairs]
        background_parts: list[list[Tensor]] = [[] for _ in pairs]
        for (kind, i), boxes in zip(requests, found):
            if kind == "object":
                object_boxes[i] = boxes.reshape(-1, 4).float()
            else:
                background_parts[i].append(boxes.reshape(-1, 4).float())
        background_boxes = [torch.cat(parts) if parts else torch.zeros(0, 4) for parts in background_parts]
        return object_boxes, background_boxes

    def _similarities(self, pairs: Sequence[PairSpec], images: Sequence[tuple[Tensor, Tensor]],
                      object_boxes: Sequence[Tensor], background_boxes: Sequence[Tensor],
                      ) -> tuple[list[list[float]], list[Optional[float]]]:
        """One feature-extractor call over every crop pair and every background image pair."""
        batch: list[Tensor] = []
        crop_owner: list[int] = []  # pair index of each crop pair (batch rows 2j, 2j + 1)
        for i, (source, target) in enumerate(images):
            for box in object_boxes[i]:
                batch += [crop_box(source, box), crop_box(target, box)]
                crop_owner.append(i)
        num_crop_rows = len(batch)
        background_pairs = [i for i, pair in enumerate(pairs) if _checks_background(pair.turn)]
        for i in background_pairs:
            batch += list(images[i])

        object_scores: list[list[float]] = [[] for _ in pairs]
        background_scores: list[Optional[float]] = [None for _ in pairs]
        if not batch:
            return object_scores, background_scores
        features = self.features.extract(batch)

        if crop_owner:
            cls, patches = features.cls[:num_crop_rows], features.patches[:num_crop_rows]
            sims = object_similarity(cls[0::2], cls[1::2], patches[0::2], patches[1::2])
            for owner, sim in zip(crop_owner, sims.tolist()):
                object_scores[owner].append(sim)

        if background_pairs:
            patches = features.patches[num_crop_rows:]
            grid = (patches.shape[1], patches.shape[2])
            tokens = patches.flatten(1, 2)
            masks = [background_mask(images[i][0].shape[1], images[i][0].shape[2], background_boxes[i])
                     for i in background_pairs]
            weights = torch.stack([patch_weights(mask, self.features.input_size, grid) for mask in masks])
            sims = masked_global_cosine(tokens[0::2], tokens[1::2], weights.to(tokens.dtype))
            for i, sim in zip(background_pairs, sims.tolist()):
                background_scores[i] = sim
        return object_scores, background_scores


def _checks_background(turn: TurnSpec) -> bool:
    """The background term is measured only when asked and when the turn lists objects
    (the reference returns no DINOv3 background score for an empty object list)."""
    return turn.check_background and len(turn.all_objects) > 0


@dataclass(frozen=True)
class BenchmarkCC:
    """EdiVal benchmark consistency over many pairs (e.g. all chains at one turn)."""

    object_mean: Optional[float]
    background_mean: Optional[float]
    cc: Optional[float]
    num_pairs: int


def benchmark_cc(results: Sequence[PairConsistency]) -> BenchmarkCC:
    """EdiVal ``eval.py`` aggregation: pairs whose turn changes the background are skipped
    entirely (object term too); over the rest, the mean of the object scores that exist and the
    mean of the background scores that exist; CC = (object mean + background mean) / 2
    (the EdiVal-CC column of MT-EditFlow Table 1, in [0, 1] here rather than percent)."""
    kept = [r for r in results if r.check_background]
    object_mean = mean_or_none([r.object_score for r in kept])
    background_mean = mean_or_none([r.background_score for r in kept])
    return BenchmarkCC(object_mean=object_mean, background_mean=background_mean,
                       cc=combine_cc(object_mean, background_mean), num_pairs=len(kept))
