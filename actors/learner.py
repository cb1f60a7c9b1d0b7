"""Learner ranks as Ray actors (thin wrappers over `edit_rl.training.Learner`) and the driver-side
`LearnerGroup` that places them and calls them together.

    group = LearnerGroup(cfg)                        # cfg.learner.num_ranks actors in a placement group
    group = LearnerGroup(cfg, placement.learner)     # or in a run's RolePlacement (kept across rebuilds)
    metrics = group.train_step(sharded, step)        # sharded = shard_samples(samples, num_ranks, mbs)
    weights = group.lora_state_ref("old")            # ObjectRef put by rank 0, for the rollout workers (NFT: "old")
    group.save_checkpoint(uri); group.load_checkpoint(uri)  # absolute path or URI (edit_rl.storage)

Each `TrainingSample.payload` is a Ray ObjectRef of a `TurnSample` (put by a rollout worker) or a
`TurnSample`; a rank fetches its payloads itself. Every rank runs collectives (FSDP2 / ZeRO), so a
rank that dies or raises leaves the others waiting in one: the group then kills every rank and
raises `LearnerRankError` naming the rank; build a new group and load the last checkpoint.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Sequence
from typing import Any, Optional

import ray
from ray.util.placement_group import remove_placement_group

from actors.placement import LEARNER_HINT, RoleSlots, cpu_threads, learner_bundle, reserve, where
from edit_rl.buffer.sharding import SampleMicroBatch
from edit_rl.buffer.sharding import ShardedSamples
from edit_rl.config.schema import Config
from edit_rl.storage import is_reachable, staged_download, staged_upload

PROCESS_GROUP_TIMEOUT = datetime.timedelta(minutes=10)


class LearnerRankError(RuntimeError):
    """A learner rank died or raised; the group is unusable afterwards."""

    def __init__(self, rank: int, method: str, cause: BaseException) -> None:
        super().__init__(f"learner rank {rank} failed in {method}: {type(cause).__name__}: {cause}")
        self.rank = rank
        self.method = method


@ray.remote
class LearnerActor:
    """One rank: joins the process group, builds the Learner, trains on its micro-batches."""

    def __init__(self, cfg: Config, rank: int, world_size: int) -> None:
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.learner: Any = None

    def placement(self) -> dict:
        """Node, placement group and GPUs this rank runs on (actors.placement.where)."""
        return where()

    def address_and_free_port(self) -> tuple[str, int]:
        """This node's IP and a port free on it (rank 0's: the process group's rendezvous)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def setup(self, master_addr: str, master_port: int) -> None:
        import torch
        import torch.distributed as torch_dist

        from edit_rl.device import allow_tf32, role_device
        from edit_rl.training.learner import Learner

        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.world_size), LOCAL_RANK="0")
        device = role_device(self.cfg.learner.num_gpus_per_rank, f"learner rank {self.rank}",
                             "learner.num_gpus_per_rank")
        if device.type == "cuda":
            torch.cuda.set_device(0)  # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU
        else:
            torch.set_num_threads(cpu_threads(self.cfg, self.cfg.learner.num_cpus_per_rank))
        allow_tf32(self.cfg.cluster.allow_tf32, device)
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=self.rank,
                                      world_size=self.world_size, timeout=PROCESS_GROUP_TIMEOUT)
        self.learner = Learner(self.cfg, device=str(device))

    def train_step(self, micro_batches: Sequence[SampleMicroBatch], step: int) -> dict[str, float]:
        from edit_rl.training.micro_batch import build_micro_batch

        flat = [s for mb in micro_batches for s in mb]
        refs = [i for i, s in enumerate(flat) if isinstance(s.payload, ray.ObjectRef)]
        fetched = dict(zip(refs, ray.get([flat[i].payload for i in refs])))
        payloads = [fetched.get(i, s.payload) for i, s in enumerate(flat)]
        batches, start = [], 0
        for mb in micro_batches:
            batches.append(build_micro_batch(mb, payloads[start:start + len(mb)]))
            start += len(mb)
        return self.learner.train_step(batches, step)

    def lora_state(self, adapter: str) -> dict[str, Any]:
        return self.learner.lora_state(adapter)

    def lora_state_ref(self, adapter: str) -> Optional[list[ray.ObjectRef]]:
        """Every rank joins the gather; rank 0 puts the state in the object store from here and
        returns its reference inside a list (Ray hands a nested reference over as is, so the driver
        never receives the tensors); the other ranks return None."""
        state = self.learner.lora_state(adapter)
        return [ray.put(state)] if self.rank == 0 else None

    def sees(self, marker_uri: str) -> bool:
        """Whether this rank's node reaches the run's storage (the driver wrote the marker)."""
        return is_reachable(marker_uri)

    def save_lora(self, uri: str) -> None:
        with staged_upload(uri) as folder:  # written on this node, then uploaded
            self.learner.save_lora(folder)

    def save_checkpoint(self, uri: str) -> None:
        with staged_upload(uri) as folder:
            self.learner.save_checkpoint(folder)

    def load_checkpoint(self, uri: str) -> None:
        with staged_download(uri) as folder:
            self.learner.load_checkpoint(folder)

    def shutdown(self) -> None:
        import torch.distributed as torch_dist

        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


class LearnerGroup:
    """``cfg.learner.num_ranks`` LearnerActors, rank i in placement-group bundle i of ``slots``
    (a run's ``RolePlacement.learner``: separate or co-located with the rollout workers, kept when
    the group is rebuilt). Without ``slots`` the group reserves its own ({CPU: num_cpus_per_rank,
    GPU: num_gpus_per_rank} per rank, strategy ``cluster.placement_strategy``, at most
    ``cluster.placement_timeout_s``) and removes it on shutdown."""

    def __init__(self, cfg: Config, slots: RoleSlots | None = None) -> None:
        cfg.validate()
        lc = cfg.learner
        self.num_ranks = lc.num_ranks
        self.placement_group = None  # the group this LearnerGroup reserved itself (removed on shutdown)
        if slots is None:
            cfg.cluster.validate_roles(cfg)
            self.placement_group = reserve(
                "learner ranks", [learner_bundle(cfg)] * self.num_ranks, cfg.cluster.placement_strategy,
                cfg.cluster.placement_timeout_s, LEARNER_HINT)
            slots = RoleSlots("learner ranks", self.placement_group, tuple(range(self.num_ranks)))
        if len(slots.bundle_indices) != self.num_ranks:
            raise ValueError(f"{len(slots.bundle_indices)} learner bundles for {self.num_ranks} ranks")
        self.slots = slots
        env = {"DS_ACCELERATOR": "cpu"} if lc.num_gpus_per_rank == 0 else {}
        self.actors = [
            LearnerActor.options(
                num_cpus=lc.num_cpus_per_rank, num_gpus=lc.num_gpus_per_rank, runtime_env={"env_vars": env},
                scheduling_strategy=slots.scheduling_strategy(rank),
            ).remote(cfg, rank, self.num_ranks)
            for rank in range(self.num_ranks)
        ]
        self.failed: LearnerRankError | None = None
        addr, port = self._call([self.actors[0].address_and_free_port.remote()], "address_and_free_port")[0]
        self._call_all("setup", addr, port)

    def _call(self, refs: list[ray.ObjectRef], method: str) -> list[Any]:
        """Results in rank order; the first rank to fail kills the group and raises."""
        index = {ref: rank for rank, ref in enumerate(refs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except Exception as err:  # noqa: BLE001 - any failure of a rank ends the group
                self.failed = LearnerRankError(index[done[0]], method, err)
                self.shutdown()
                raise self.failed from err
        return ray.get(refs)

    def _call_all(self, method: str, *args: Any) -> list[Any]:
        if self.failed is not None:
            raise RuntimeError(f"this learner group failed earlier ({self.failed}); make a new one") from self.failed
        return self._call([getattr(a, method).remote(*args) for a in self.actors], method)

    def train_step(self, sharded: ShardedSamples, step: int) -> dict[str, float]:
        """Every rank trains on its micro-batches; rank 0's metrics (aggregated over all ranks)."""
        if len(sharded.ranks) != self.num_ranks:
            raise ValueError(f"samples are sharded for {len(sharded.ranks)} ranks, the group has {self.num_ranks}")
        if self.failed is not None:
            raise RuntimeError(f"this learner group failed earlier ({self.failed}); make a new one") from self.failed
        refs = [a.train_step.remote(sharded.ranks[r], step) for r, a in enumerate(self.actors)]
        return self._call(refs, "train_step")[0]

    def lora_states(self, adapter: str = "default") -> list[dict[str, Any]]:
        """Every rank's full copy of one adapter's LoRA (they agree; tests compare them)."""
        return self._call_all("lora_state", adapter)

    def lora_state(self, adapter: str = "default") -> dict[str, Any]:
        """The adapter's full LoRA tensors ("default"; "old": what DiffusionNFT rollouts sample with)."""
        return self.lora_states(adapter)[0]

    def lora_state_ref(self, adapter: str = "default") -> ray.ObjectRef:
        """The adapter's LoRA as one object-store reference put by rank 0: the weight sync to the
        rollout workers without the tensors passing through the driver (results/benchmarks.md,
        ``weight_sync/*/direct-vs-driver``). The object is owned by rank 0,
        so it goes with that actor: after a learner failure the driver syncs again."""
        return self._call_all("lora_state_ref", adapter)[0][0]

    def check_storage(self, marker_uri: str) -> None:
        """Raise unless every rank's node sees the marker the driver wrote in the run's storage."""
        blind = [rank for rank, seen in enumerate(self._call_all("sees", marker_uri)) if not seen]
        if blind:
            raise ValueError(f"learner ranks {blind} do not see {marker_uri}, which the driver wrote: the "
                             "checkpoint storage is not shared with their nodes. Set trainer.storage to a URI "
                             "every node reaches (s3://, gs://, hdfs://) or a path on a shared filesystem")

    def save_lora(self, uri: str) -> None:
        """The "default" adapter in diffusers' LoRA format (rank 0 writes), at an absolute path or
        URI (`edit_rl.storage`)."""
        self._call_all("save_lora", uri)

    def save_checkpoint(self, uri: str) -> None:
        """Each rank writes its part on its node and uploads it to ``uri`` (absolute path or URI)."""
        self._call_all("save_checkpoint", uri)

    def load_checkpoint(self, uri: str) -> None:
        self._call_all("load_checkpoint", uri)

    def shutdown(self) -> None:
        """Kill the ranks and release the placement group if this group reserved it (idempotent)."""
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        if self.placement_group is not None:
            remove_placement_group(self.placement_group)
            self.placement_group = None
