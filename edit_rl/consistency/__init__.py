"""EdiVal-CC content consistency (Grounding DINO boxes + DINOv3 features), batched over image pairs.

Entry point: :class:`EdivalCC` (``edit_rl.consistency.build.build_consistency`` loads the real, tiny or shapes-world models; any
:class:`Detector` / :class:`FeatureExtractor` pair plugs in). Formulas: :mod:`.similarity`.
"""
from edit_rl.consistency.detector import GroundingDinoDetector, detection_prompt
from edit_rl.consistency.edival_cc import (
    PAIRINGS,
    BenchmarkCC,
    Chain,
    EdivalCC,
    PairConsistency,
    Pairing,
    PairSpec,
    TurnSpec,
    benchmark_cc,
    pair_indices,
)
from edit_rl.consistency.features import Dinov3Features, split_tokens
from edit_rl.consistency.interfaces import Detector, FeatureExtractor, Features

__all__ = [
    "PAIRINGS", "BenchmarkCC", "Chain", "Detector", "Dinov3Features", "EdivalCC", "FeatureExtractor",
    "Features", "GroundingDinoDetector", "PairConsistency", "PairSpec", "Pairing", "TurnSpec",
    "benchmark_cc", "detection_prompt", "pair_indices", "split_tokens",
]
