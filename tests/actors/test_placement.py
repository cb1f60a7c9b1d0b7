"""Placement from config on a real local Ray (4 logical CPUs, 2 declared GPUs, no CUDA needed):
rollout workers in their placement-group bundles (also after a restart), the co-located group of
learner ranks and rollout workers, pairs sharing a GPU, Serve replicas with a bundle each (and
still autoscaling), and requests the cluster cannot meet failing with an error that says why."""
from __future__ import annotations

import asyncio
import time

import pytest
import ray
import torch
from ray import serve
from ray.exceptions import RayActorError
from ray.util.placement_group import placement_group_table

from actors.learner import LearnerGroup
from actors.placement import PlacementError, RolePlacement, RoleSlots, colocated_bundles, reserve
from actors.rollout_worker import start_rollout_workers
from actors.scoring_services import deployment_options, start_services
from edit_rl.config import load_config

CPU_TINY = "jobs/configs/cpu_tiny.yaml"
SYNTHETIC = ["judge.backend=synthetic", "consistency.detector=synthetic"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False)
    yield
    serve.shutdown()
    ray.shutdown()
    torch.set_num_threads(threads)


def bundle_in_use(group, index: int) -> bool:
    """Whether an actor holds bundle ``index`` (each one takes 0.001 of its bundle_group_<i>_<id>)."""
    key = f"bundle_group_{index}_{group.id.hex()}"
    return ray.available_resources().get(key, 1000.0) < 1000.0


def state(group) -> str:
    return placement_group_table(group)["state"]


def restarted(worker, old_pid: int, timeout_s: float = 60.0) -> dict:
    """The worker's placement once Ray has restarted it in a new process."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            where = ray.get(worker.placement.remote(), timeout=timeout_s)
            if where["pid"] != old_pid:
                return where
        except RayActorError:  # the call reached the dying process
            pass
        time.sleep(0.2)
    raise AssertionError("the worker did not come back")


def wait_for(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_rollout_workers_run_in_their_bundles_come_back_there_and_go_with_the_group():
    cfg = load_config(CPU_TINY, ["rollout.num_workers=2", "cluster.colocate_rollout_and_learner=false",
                                 "cluster.rollout_strategy=PACK"])
    placement = RolePlacement(cfg, learner=False)
    try:
        assert placement.learner is None and len(placement.groups) == 1
        group = placement.rollout.group
        table = placement_group_table(group)
        assert table["state"] == "CREATED" and table["strategy"] == "PACK"
        assert table["bundles"] == {0: {"CPU": 0.5}, 1: {"CPU": 0.5}}
        workers = start_rollout_workers(cfg, placement.rollout)
        where = ray.get([w.placement.remote() for w in workers])
        assert {w["placement_group_id"] for w in where} == {group.id.hex()}
        assert [w["torch_threads"] for w in where] == [1, 1]  # cluster.cpu_threads 0: from 0.5 CPU, at least 1
        assert bundle_in_use(group, 0) and bundle_in_use(group, 1)

        ray.kill(workers[1], no_restart=False)  # Ray restarts it (cluster.max_restarts)...
        again = restarted(workers[1], where[1]["pid"])
        assert again["placement_group_id"] == group.id.hex() and bundle_in_use(group, 1)  # ...in the same bundle
        assert ray.available_resources()[f"bundle_group_{group.id.hex()}"] == pytest.approx(2000 - 0.002)
    finally:
        placement.remove()
    assert state(group) == "REMOVED"
    with pytest.raises(RayActorError):  # removing the group stopped its workers
        ray.get(workers[0].ping.remote(), timeout=30)


def test_colocated_learner_ranks_and_rollout_workers_share_one_group_which_outlives_the_learner_group():
    cfg = load_config(CPU_TINY, ["rollout.num_workers=2", "cluster.cpu_threads=2"])  # the preset: co-located, STRICT_PACK
    assert cfg.cluster.colocate_rollout_and_learner and cfg.learner.num_ranks == 1
    placement = RolePlacement(cfg)
    try:
        assert len(placement.groups) == 1 and placement.learner.group is placement.rollout.group
        group = placement.rollout.group
        table = placement_group_table(group)
        # bundle 0: learner rank 0 (0.5 CPU) + rollout worker 0 (0.5); bundle 1: worker 1 alone
        assert table["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 0.5}} and table["strategy"] == "STRICT_PACK"
        workers = start_rollout_workers(cfg, placement.rollout)
        learners = LearnerGroup(cfg, placement.learner)
        rank0, worker0 = ray.get([learners.actors[0].placement.remote(), workers[0].placement.remote()])
        assert rank0["placement_group_id"] == worker0["placement_group_id"] == group.id.hex()
        assert rank0["node_id"] == worker0["node_id"] == table["bundles_to_node_id"][0]
        assert rank0["torch_threads"] == worker0["torch_threads"] == 2  # cluster.cpu_threads, not the 0.5 CPU
        learners.shutdown()  # as before a rebuild after a rank failure: the shared group stays
        assert state(group) == "CREATED" and ray.get(workers[0].ping.remote())
        assert placement_group_table(group)["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 0.5}}
    finally:
        placement.remove()
    assert state(group) == "REMOVED"


@ray.remote(num_cpus=0)
class Probe:
    def where(self):
        from actors.placement import where

        return where()


def test_a_pair_with_fractional_gpus_shares_one_gpu_and_pairs_get_different_ones():
    cfg = load_config(CPU_TINY, ["rollout.num_workers=2", "learner.num_ranks=2", "learner.num_gpus_per_rank=0.5",
                                 "cluster.rollout_num_gpus=0.5"])
    bundles = colocated_bundles(cfg)
    assert bundles == [{"CPU": 1.0, "GPU": 1.0}] * 2
    group = reserve("pairs", bundles, "PACK", timeout_s=30)
    try:
        slots = RoleSlots("pairs", group, (0, 1))
        probes = [Probe.options(num_gpus=0.5, scheduling_strategy=slots.scheduling_strategy(i // 2)).remote()
                  for i in range(4)]  # learner rank 0, worker 0, learner rank 1, worker 1
        gpus = [w["gpu_ids"] for w in ray.get([p.where.remote() for p in probes])]
        assert gpus[0] == gpus[1] and gpus[2] == gpus[3] and gpus[0] != gpus[2]
    finally:
        ray.util.remove_placement_group(group)


def test_a_group_the_cluster_cannot_hold_fails_naming_the_role_and_the_resources():
    cfg = load_config(CPU_TINY, ["rollout.num_workers=2", "cluster.rollout_num_cpus=3",
                                 "cluster.placement_timeout_s=1"])
    before = {pg["placement_group_id"] for pg in placement_group_table().values()}
    with pytest.raises(PlacementError) as err:
        RolePlacement(cfg)
    message = str(err.value)
    assert message.startswith("learner ranks + rollout workers (co-located): placement group not placed after 1 s")
    assert "2 bundle(s) (1 x {CPU: 3.5}, 1 x {CPU: 3}; {CPU: 6.5} in all), strategy STRICT_PACK" in message
    assert "the cluster has {CPU: 4} in all" in message and "at most {CPU: 4} on one node" in message
    assert "STRICT_PACK needs one node holding every bundle" in message
    new = [pg for pg in placement_group_table().values() if pg["placement_group_id"] not in before]
    assert new and all(pg["state"] == "REMOVED" for pg in new)  # nothing left pending


def replica_groups(app: str) -> list[dict]:
    return [pg for pg in placement_group_table().values()
            if f"::{app}#" in pg["name"] and pg["state"] != "REMOVED"]


def test_serve_replicas_each_reserve_a_bundle_and_unplaceable_ones_fail_clearly():
    cfg = load_config(CPU_TINY, [*SYNTHETIC, "cluster.service_strategy=STRICT_PACK"])
    judge, consistency = start_services(cfg, app_prefix="placement-test")
    try:
        groups = replica_groups("placement-test-judge")
        assert len(groups) == 1  # min_replicas, one group each (more: test_autoscaling_...)
        assert all(g["bundles"] == {0: {"CPU": 0.25}} and g["strategy"] == "STRICT_PACK" and g["state"] == "CREATED"
                   for g in groups)
        assert judge.placement.remote().result()["placement_group_id"] in {g["placement_group_id"] for g in groups}
        assert [g["bundles"] for g in replica_groups("placement-test-consistency")] == [{0: {"CPU": 0.25}}]
    finally:
        for app in ("placement-test-judge", "placement-test-consistency"):
            serve.delete(app)
    wait_for(lambda: not replica_groups("placement-test-judge"))  # Serve removes a replica's group with it

    too_big = load_config(CPU_TINY, [*SYNTHETIC, "judge.scaling.num_cpus=8", "consistency.scaling.num_cpus=8",
                                     "cluster.placement_timeout_s=2"])
    with pytest.raises(PlacementError) as err:
        start_services(too_big, app_prefix="placement-test")
    message = str(err.value)
    assert message.startswith("judge replicas: 1 of 1 not placed after 2 s (Serve application 'placement-test-judge')")
    assert "1 x {CPU: 8}" in message and "the cluster has {CPU: 4} in all" in message
    assert not any(app.startswith("placement-test") for app in serve.status().applications)


@serve.deployment
class Slow:
    async def __call__(self) -> str:
        await asyncio.sleep(0.5)
        from actors.placement import where

        return where()["placement_group_id"]


def test_autoscaling_adds_replicas_each_with_its_own_bundle():
    cfg = load_config(CPU_TINY, ["judge.scaling.min_replicas=1", "judge.scaling.max_replicas=2",
                                 "judge.scaling.target_ongoing_requests=1"])
    options = deployment_options(cfg.judge.scaling, cfg.cluster.service_strategy)
    assert options["autoscaling_config"]["min_replicas"] == 1 and options["autoscaling_config"]["max_replicas"] == 2
    options["autoscaling_config"].update(upscale_delay_s=0)
    handle = serve.run(Slow.options(**options).bind(), name="placement-autoscale", route_prefix=None)
    try:
        assert len(replica_groups("placement-autoscale")) == 1
        seen: set[str] = set()
        deadline = time.monotonic() + 40
        while len(seen) < 2 and time.monotonic() < deadline:  # sustained load: 8 requests in flight
            seen |= {r.result() for r in [handle.remote() for _ in range(8)]}
        groups = replica_groups("placement-autoscale")
        assert len(groups) == 2 and all(g["bundles"] == {0: {"CPU": 0.25}} for g in groups)
        assert seen == {g["placement_group_id"] for g in groups}  # both replicas served, each in its own group
    finally:
        serve.delete("placement-autoscale")
