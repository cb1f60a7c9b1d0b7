"""Bring-up and tear-down of the Ray roles a driver runs on, shared by the trainer and the evaluator.

    roles = start_roles(cfg, learner=True)     # placement groups, rollout workers, both services, learners
    ...                                        # roles.workers, roles.judge, roles.consistency, roles.learners
    roles.close()                              # the Ray cluster itself stays

The order: placement groups first (``cluster.*``: separate or co-located rollout / learner groups),
then the rollout workers in their bundles, then the judge and consistency Serve applications are
deployed; the learner group starts while the service replicas come up, and the call returns once
every rollout worker has loaded its editor and both services run. A failure anywhere releases what was already started and re-raises.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from actors.learner import LearnerGroup
from actors.placement import RolePlacement
from actors.rollout_worker import start_rollout_workers, stop_rollout_workers, wait_for_rollout_workers
from actors.scoring_services import deploy_services, stop_services, wait_for_services
from edit_rl.config import Config

TRAINING_APP_PREFIX = "edit-rl"


@dataclass
class Roles:
    """What one driver holds: its placement groups, rollout workers, the two services' handles and,
    for training, the learner group (None for an evaluation)."""

    cfg: Config
    app_prefix: str
    placement: RolePlacement
    workers: list
    judge: Any
    consistency: Any
    learners: Optional[LearnerGroup]

    def restart_learners(self) -> LearnerGroup:
        """Shut the learner group down and start a new one in the same placement bundles (after a
        rank failure)."""
        if self.learners is None:
            raise RuntimeError("these roles were started without a learner group")
        self.learners.shutdown()
        self.learners = LearnerGroup(self.cfg, self.placement.learner)
        return self.learners

    def close(self) -> None:
        """Release the learner group, the rollout workers, both services and the placement groups."""
        if self.learners is not None:
            self.learners.shutdown()
        stop_rollout_workers(self.workers)
        stop_services(self.app_prefix)
        self.placement.remove()


def start_roles(cfg: Config, learner: bool, app_prefix: str = TRAINING_APP_PREFIX) -> Roles:
    """Start the roles for ``cfg`` (``learner``: also the learner group and its placement group;
    ``app_prefix``: the services' Serve application names, so an evaluation runs beside a training)."""
    placement = RolePlacement(cfg, learner=learner)
    try:
        workers = start_rollout_workers(cfg, placement.rollout)
        judge, consistency = deploy_services(cfg, app_prefix)
        learners = LearnerGroup(cfg, placement.learner) if learner else None  # while the replicas start
        wait_for_rollout_workers(workers)  # a worker whose start failed raises here, before any rollout
        wait_for_services(cfg, app_prefix)
    except BaseException:
        placement.remove()  # also stops the workers (and ranks) already in it
        stop_services(app_prefix)
        raise
    return Roles(cfg, app_prefix, placement, workers, judge, consistency, learners)
