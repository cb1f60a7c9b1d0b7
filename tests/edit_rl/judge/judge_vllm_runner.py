"""Run every judge setting of judge_cases on the real vLLM engine, in this process of its own.

Usage: python judge_vllm_runner.py OUT.json. The engine is loaded once through build_judge, i.e.
resolve_model("tiny/qwen3-vl") then vllm.LLM(model=folder), the code path of a hub id.
"""
import json
import os
import sys
import time


def main(out_path: str) -> None:
    import judge_cases  # this script's folder is sys.path[0]

    from edit_rl.judge.build import build_judge
    from edit_rl.judge.vllm_backend import CPU_ENV_DEFAULTS

    start = time.perf_counter()
    judge = build_judge(judge_cases.config("vllm", "multi_turn", False, "logit"))
    loaded = time.perf_counter()
    results = judge_cases.run_settings(judge.backend, "vllm")
    engine = judge.backend.llm.llm_engine.vllm_config  # what the engine was built with
    report = {"results": results, "backend": type(judge.backend).__name__,
              "env": {key: os.environ.get(key) for key in CPU_ENV_DEFAULTS},
              "engine": {"gpu_memory_utilization": engine.cache_config.gpu_memory_utilization,
                         "max_num_seqs": engine.scheduler_config.max_num_seqs,
                         "mm_processor_kwargs": engine.model_config.multimodal_config.mm_processor_kwargs},
              "load_s": loaded - start, "run_s": time.perf_counter() - loaded}
    with open(out_path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1])
