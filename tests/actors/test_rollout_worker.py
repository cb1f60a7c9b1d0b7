"""Driving rollout workers from the driver (actors/rollout_worker.py), on a real local Ray with the
tiny editor: waiting for them (their process ids), sending requests to them in turn, pushing
weights to all of them at once, and stopping them."""
import os

import numpy as np
import pytest
import ray

from actors.rollout_worker import (ChainInput, RolloutRequest, RolloutWorker, num_outputs, push_weights,
                                   roll_out_in_turn, stop_rollout_workers, wait_for_rollout_workers)
from edit_rl.config import load_config
from edit_rl.data import load_training_chains



def test_a_request_returns_meta_images_and_a_sample_per_trajectory_turn_or_two_for_an_evaluation():
    chain = ChainInput("c", np.zeros((8, 8, 3), np.uint8), ("a", "b", "c"))
    assert num_outputs(RolloutRequest(0, (chain, chain), 4, 0, -1, [None])) == 2 + 2 * 4 * 3
    assert num_outputs(RolloutRequest(0, (chain,), 4, 0, -1, [None], evaluation=True)) == 2


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def test_workers_roll_out_in_turn_take_pushed_weights_and_stop(local_ray):
    cfg = load_config("jobs/configs/cpu_tiny.yaml", ["rollout.group_size=2", "rollout.num_turns=1"])
    workers = [RolloutWorker.options(num_cpus=0.5).remote(cfg, i) for i in range(2)]
    pids = wait_for_rollout_workers(workers)
    assert len(set(pids)) == 2 and os.getpid() not in pids

    chain = load_training_chains(cfg.data)[0]
    inputs = ChainInput(chain.chain_id, np.asarray(chain.load_image(cfg.data.image_dir).convert("RGB")),
                        (chain.turns[0].instruction,))
    requests = [RolloutRequest(0, (inputs,), 2, 7 + i, -1, [None]) for i in range(3)]
    outputs = roll_out_in_turn(workers, requests)
    assert [len(refs) for refs in outputs] == [2 + 2 * 1] * 3  # meta, images, one sample per (trajectory, turn)
    metas = [ray.get(refs[0]) for refs in outputs]
    assert [[m.slot for m in meta] for meta in metas] == [[0, 1]] * 3
    assert all(len(images.turns) == 1 for images in ray.get(outputs[0][1]))

    seconds = push_weights(workers, 5, ray.put({}))  # an empty state: nothing to write, the version moves on
    assert len(seconds) == 2 and all(s >= 0 for s in seconds)
    assert ray.get([w.weights_version.remote() for w in workers]) == [5, 5]

    stop_rollout_workers(workers)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(workers[0].ping.remote(), timeout=60)
