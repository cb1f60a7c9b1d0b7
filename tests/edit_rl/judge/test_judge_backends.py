"""The real vLLM engine and a transformers forward pass on the tiny Qwen3-VL agree in float32.

vLLM runs once per test module in a subprocess (judge_vllm_runner.py) so that its process-wide
settings (torch threads, environment) cannot leak into other tests; it scores every setting of
judge_cases batched and one request at a time. The transformers backend runs here on the same
requests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import judge_cases
from edit_rl.judge.build import build_judge
from edit_rl.judge.vllm_backend import CPU_ENV_DEFAULTS, apply_cpu_env_defaults

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TOL = 1e-5
KEYS = [f"{m}/{'thinking' if t else 'direct'}/{s}" for m, t, s in judge_cases.SETTINGS]


@pytest.fixture(scope="module")
def vllm_process(tiny_qwen3_vl_path, tmp_path_factory):
    """Starts the vLLM run in the background (it overlaps the transformers run); yields (process, out)."""
    folder = tmp_path_factory.mktemp("vllm")
    env = {k: v for k, v in os.environ.items() if k not in CPU_ENV_DEFAULTS}
    env["VLLM_CPU_KVCACHE_SPACE"] = "2"  # a user's explicit setting must survive
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    with open(folder / "log.txt", "w") as log:
        proc = subprocess.Popen([sys.executable, str(HERE / "judge_vllm_runner.py"), str(folder / "report.json")],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc, folder
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def transformers_results(vllm_process, tiny_qwen3_vl_path) -> dict:
    # One thread: ~4x faster for 64-wide matrices, and it leaves the other core to vLLM.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        judge = build_judge(judge_cases.config("transformers", "multi_turn", False, "logit"))
        return judge_cases.run_settings(judge.backend, "transformers")
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vllm_report(vllm_process, transformers_results) -> dict:
    proc, folder = vllm_process
    returncode = proc.wait(timeout=600)
    assert returncode == 0, (folder / "log.txt").read_text()[-4000:]
    return json.loads((folder / "report.json").read_text())


def _max_prob_diff(a: list[dict], b: list[dict]) -> float:
    diff = 0.0
    for ra, rb in zip(a, b, strict=True):
        for pa, pb in zip(ra["probs"], rb["probs"], strict=True):
            assert (pa is None) == (pb is None)
            if pa is not None:
                diff = max(diff, max(abs(x - y) for x, y in zip(pa, pb, strict=True)))
    return diff


def _assert_same(a: list[dict], b: list[dict], key: str) -> None:
    assert _max_prob_diff(a, b) <= TOL, key
    for ra, rb in zip(a, b, strict=True):
        assert ra["fallback"] == rb["fallback"], key
        assert ra["response"] == rb["response"], key  # greedy reasoning / answers: same tokens
        assert ra["values"] == pytest.approx(rb["values"], abs=5 * TOL), key
        assert len(ra["values"]) == len(rb["values"])


@pytest.mark.slow
def test_vllm_ran_in_process_on_cpu_settings_without_overriding_the_user(vllm_report):
    assert vllm_report["backend"] == "VLLMJudgeBackend"
    assert vllm_report["env"] == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
                                  "VLLM_CPU_KVCACHE_SPACE": "2"}
    assert sorted(vllm_report["results"]) == sorted(KEYS)


def test_the_engine_is_built_with_the_judge_configs_engine_settings(vllm_report):
    assert vllm_report["engine"] == {"gpu_memory_utilization": 0.5, "max_num_seqs": 6,
                                     "mm_processor_kwargs": {"max_pixels": 64 * 128}}


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.slow
def test_vllm_and_transformers_give_the_same_scores(vllm_report, transformers_results, key):
    _assert_same(vllm_report["results"][key]["batched"], transformers_results[key]["batched"], key)


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
@pytest.mark.slow
def test_batching_gives_the_same_results_as_one_request_at_a_time(vllm_report, transformers_results, backend):
    results = vllm_report["results"] if backend == "vllm" else transformers_results
    for key in KEYS:
        _assert_same(results[key]["batched"], results[key]["single"], key)


def test_scores_are_informative_not_flat(transformers_results):
    """The comparison above means something: the random judge's distributions are far from uniform,
    thinking mode generates text, and every turn of every request gets a score."""
    direct = transformers_results["multi_turn/direct/logit"]["batched"]
    assert [len(r["values"]) for r in direct] == [3, 2, 1]
    probs = [p for r in direct for p in r["probs"]]
    assert all(abs(sum(p) - 1) < 1e-9 for p in probs)
    assert max(max(p) - min(p) for p in probs) > 0.1
    assert all(0 < m <= 1 for r in direct for m in r["mass"])
    single = transformers_results["single_turn/direct/logit"]["batched"]
    assert [len(r["values"]) for r in single] == [3, 2, 1]
    thinking = transformers_results["multi_turn/thinking/logit"]["batched"]
    assert any(r["response"] for r in thinking)
    # the random judge never writes the answer format: sampled answers all fall back, and are counted
    sampled = transformers_results["multi_turn/direct/sampled"]["batched"]
    assert all(all(r["fallback"]) and r["values"] == [1.0] * len(r["values"]) for r in sampled)


def test_cpu_env_defaults_never_override(monkeypatch):
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0-1")
    for key in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_CPU_KVCACHE_SPACE"):
        monkeypatch.delenv(key, raising=False)
    applied = apply_cpu_env_defaults()
    assert applied == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
