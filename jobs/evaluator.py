"""The evaluation driver: chains -> rollout workers -> judge and consistency services -> scored turns
and per-chain grids (``jobs/evaluate.py`` is the entrypoint that writes the report).

Modes (``evaluation.modes``):

* ``multi_turn``: each chain is edited turn by turn, turn t editing turn t-1's output (EdiVal's
  multipass, MT-EditFlow's setting);
* ``single_turn``: every instruction is applied to the input image on its own (one 1-turn chain
  ``<chain_id>#t<k>`` per turn).

Both run on the rollout workers with the evaluation sampler (``sampler.eval_method`` /
``eval_num_steps``), one trajectory per chain, noise fixed by ``evaluation.seed`` and the first
chain of each request. Every turn is scored through the training services: the judge in
single-turn mode (turn t on image t-1 -> image t) and EdiVal-CC of the input image vs turn t's
output, with the chain's cumulated object lists (``edit_rl.data.turn_specs``, pairing "reference").
"""
from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import ray

from actors.dispatch import rollout_seed
from actors.eval_dispatch import EvalDispatcher, EvalRequest, ScoredTrajectory
from actors.placement import RolePlacement
from actors.rollout_worker import ChainInput, RolloutRequest, start_rollout_workers, wait_for_rollout_workers
from actors.scoring_services import deploy_services, stop_services, wait_for_services
from edit_rl.config import Config
from edit_rl.data import EditChain, RowError, turn_specs
from edit_rl.evaluation import EvalData, TurnRecord, load_eval_chains, turn_succeeded
from edit_rl.observability import TrajectorySample, TurnSample, save_sample_grid

log = logging.getLogger(__name__)
APP_PREFIX = "edit-rl-eval"
BASE_WEIGHTS_VERSION = -1  # a worker's initial adapters (LoRA B = 0: the base model); nothing to load


def evaluation_config(cfg: Config) -> Config:
    """``cfg`` with what the benchmark fixes: the judge scores each turn on its own (single-turn
    mode, MT-EditFlow's evaluation) and consistency compares the input image with each output."""
    return dataclasses.replace(cfg, judge=dataclasses.replace(cfg.judge, mode="single_turn"),
                               consistency=dataclasses.replace(cfg.consistency, pairing="reference")).validate()


def single_turn_id(chain_id: str, turn: int) -> str:
    return f"{chain_id}#t{turn}"


@dataclass(frozen=True)
class _Unit:
    """One chain as the workers see it, and where its turns belong: (chain, first turn index)."""

    inputs: ChainInput
    specs: tuple
    chain: EditChain
    first_turn: int


class Evaluator:
    """Rolls out and scores ``cfg.evaluation``'s chains with the editor (plus a LoRA's weights,
    ``lora_state``: peft-format tensors for the sampling adapter of a worker built with the
    adapter's rank / alpha / targets in ``cfg.lora``)."""

    def __init__(self, cfg: Config, lora_state: Optional[dict] = None):
        self.cfg = cfg
        self.data: EvalData = load_eval_chains(cfg.evaluation, cfg.data)
        # The rollout workers' own placement group (cluster.rollout_strategy; no learner here).
        self.placement = RolePlacement(cfg, learner=False)
        try:
            self.workers = start_rollout_workers(cfg, self.placement.rollout)
            judge, consistency = deploy_services(cfg, app_prefix=APP_PREFIX)
            wait_for_rollout_workers(self.workers)  # while the service replicas start
            wait_for_services(cfg, app_prefix=APP_PREFIX)
        except BaseException:
            self.placement.remove()
            stop_services(APP_PREFIX)
            raise
        self.dispatcher = EvalDispatcher(self.workers, judge, consistency)
        self.weights: tuple[int, list] = (BASE_WEIGHTS_VERSION, [])
        self.use_lora(lora_state)

    def fits(self, cfg: Config, with_lora: bool) -> bool:
        """Whether these workers and services evaluate ``cfg``: the same config, except that the base
        model (``with_lora`` False) samples with the workers' zero adapters, whatever their shape."""
        return (cfg if with_lora else dataclasses.replace(cfg, lora=self.cfg.lora)) == self.cfg

    def use_lora(self, lora_state: Optional[dict]) -> None:
        """Sample the next `run` with ``lora_state`` (None: the base model, only while no LoRA was
        loaded: the workers keep the last one), and start its error list and grids afresh."""
        version = self.weights[0]
        if lora_state is not None:
            self.weights = (max(version, 0) + 1, [ray.put(lora_state)])
        elif version != BASE_WEIGHTS_VERSION:
            raise ValueError("this evaluator's workers hold a LoRA: evaluate the base model first or with a new Evaluator")
        self.errors: list[RowError] = list(self.data.errors)
        self.grids: list[Path] = []

    # ------------------------------------------------------------------ inputs
    def _loaded(self) -> list[tuple[EditChain, np.ndarray]]:
        """Each chain with its input image; a chain whose image cannot be read is reported and left out."""
        out = []
        image_dir = self.cfg.evaluation.image_dir
        for index, chain in enumerate(self.data.chains):
            try:
                out.append((chain, np.asarray(chain.load_image(image_dir).convert("RGB"))))
            except OSError as err:
                self.errors.append(RowError(index, f"chain {chain.chain_id!r} skipped: {err}"))
        return out

    def _units(self, mode: str, loaded: list[tuple[EditChain, np.ndarray]]) -> list[_Unit]:
        units = []
        for chain, image in loaded:
            specs = turn_specs(chain.turns, "reference")
            if mode == "multi_turn":
                units.append(_Unit(ChainInput(chain.chain_id, image, chain.instructions), specs, chain, 0))
            else:
                units += [_Unit(ChainInput(single_turn_id(chain.chain_id, k + 1), image, (turn.instruction,)),
                                (specs[k],), chain, k) for k, turn in enumerate(chain.turns)]
        return units

    def _requests(self, units: list[_Unit]) -> list[EvalRequest]:
        """Consecutive units of equal length, ``evaluation.chains_per_request`` per request; the
        noise of a request is seeded by ``evaluation.seed`` and its first chain."""
        version, weights = self.weights
        batches: list[list[_Unit]] = []
        for unit in units:
            last = batches[-1] if batches else None
            if (last is not None and len(last) < self.cfg.evaluation.chains_per_request
                    and len(last[0].inputs.instructions) == len(unit.inputs.instructions)):
                last.append(unit)
            else:
                batches.append([unit])
        requests = []
        for batch in batches:
            seed = rollout_seed(self.cfg.evaluation.seed, 0, batch[0].inputs.chain_id)
            rollout = RolloutRequest(0, tuple(u.inputs for u in batch), 1, seed, version, weights, evaluation=True)
            requests.append(EvalRequest(rollout, tuple(u.specs for u in batch)))
        return requests

    # ------------------------------------------------------------------ scoring
    def _records(self, mode: str, unit: _Unit, scored: ScoredTrajectory) -> list[TurnRecord]:
        threshold = self.cfg.reward.binary_threshold
        if not len(scored.judge.values) == len(scored.consistency.terms) == len(unit.inputs.instructions):
            raise RuntimeError(f"{scored.chain_id}: {len(unit.inputs.instructions)} turns but "
                               f"{len(scored.judge.values)} judge scores and {len(scored.consistency.terms)} CC terms")
        records = []
        for j, (score, fallback, terms, cc) in enumerate(zip(scored.judge.values, scored.judge.fallback,
                                                               scored.consistency.terms, scored.consistency.values)):
            object_score, background_score, counted = terms
            turn = unit.chain.turns[unit.first_turn + j]
            measured = object_score is not None or background_score is not None
            records.append(TurnRecord(
                mode=mode, chain_id=unit.chain.chain_id, turn=unit.first_turn + j + 1, task_type=turn.task_type,
                instruction=turn.instruction, judge_score=float(score), judge_fallback=bool(fallback),
                success=turn_succeeded(float(score), threshold), cc=float(cc) if measured else None,
                cc_object=object_score, cc_background=background_score, cc_counted=bool(counted)))
        return records

    def run(self, grids_dir: Path) -> list[TurnRecord]:
        """Every mode's records (mode, chain, turn order); grids of the first ``evaluation.num_grids``
        chains written to ``grids_dir``."""
        loaded = self._loaded()
        if not loaded:
            raise RuntimeError("no chain to evaluate: " + "; ".join(e.reason for e in self.errors[:5]))
        records: list[TurnRecord] = []
        grid_chains = loaded[:self.cfg.evaluation.num_grids]
        grid_rows: dict[str, list[TrajectorySample]] = {chain.chain_id: [] for chain, _ in grid_chains}
        for mode in self.cfg.evaluation.modes:
            units = self._units(mode, loaded)
            requests = self._requests(units)
            log.info("%s: %d chain(s) in %d request(s)", mode, len(units), len(requests))
            scored = self.dispatcher.run(requests)
            by_id = {u.inputs.chain_id: u for u in units}
            mode_records = [r for s in scored for r in self._records(mode, by_id[s.chain_id], s)]
            records += mode_records
            self._add_grid_rows(mode, grid_rows, [(by_id[s.chain_id], s) for s in scored], mode_records)
        self._save_grids(grid_rows, grids_dir)
        return records

    # ------------------------------------------------------------------ grids
    def _add_grid_rows(self, mode: str, rows: dict[str, list[TrajectorySample]],
                       scored: list[tuple[_Unit, ScoredTrajectory]], records: list[TurnRecord]) -> None:
        """One grid row per chain and mode: the input image, then each turn's output."""
        wanted = [(u, s) for u, s in scored if u.chain.chain_id in rows]
        if not wanted:
            return
        fetched = {id(s.images[0]): s.images[0] for _, s in wanted}
        images = dict(zip(fetched, ray.get(list(fetched.values()))))
        cc = {(r.chain_id, r.turn): r.cc for r in records}
        turns: dict[str, list[TurnSample]] = {}
        inputs: dict[str, np.ndarray] = {}
        for unit, s in wanted:
            trajectory = images[id(s.images[0])][s.index]
            chain = unit.chain
            inputs.setdefault(chain.chain_id, trajectory.input)
            for j, image in enumerate(trajectory.turns):
                k = unit.first_turn + j
                turns.setdefault(chain.chain_id, []).append(TurnSample(
                    image, f"T{k + 1}: {chain.turns[k].instruction}", s.judge.values[j], cc[(chain.chain_id, k + 1)]))
        for chain_id, samples in turns.items():
            rows[chain_id].append(TrajectorySample(inputs[chain_id], samples))

    def _save_grids(self, rows: dict[str, list[TrajectorySample]], folder: Path) -> None:
        self.grids = [save_sample_grid(samples, folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', chain_id)}.png")
                      for chain_id, samples in rows.items() if samples]

    def close(self) -> None:
        """Release the evaluation's workers, services and placement group (the Ray cluster itself stays)."""
        for worker in self.workers:
            ray.kill(worker, no_restart=True)
        stop_services(APP_PREFIX)
        self.placement.remove()
