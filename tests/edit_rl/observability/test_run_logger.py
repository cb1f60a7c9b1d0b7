"""RunLogger: one call per step writes metrics.jsonl, TensorBoard, the console line and the sinks."""
import io

import numpy as np
from PIL import Image

from edit_rl.config import load_config
from edit_rl.observability import RunLogger, TrajectorySample, GridTurn, create_run_dir, read_metrics


def test_a_step_goes_to_every_output_and_resume_continues_the_file(tmp_path):
    run = create_run_dir(load_config(None, ["run_name=t"]), output_dir=tmp_path)
    seen, out = [], io.StringIO()
    with RunLogger(run, total_steps=4, sinks=[lambda s, m: seen.append((s, m))], stream=out) as logger:
        for step in range(3):
            logger.log(step, {"reward": {"if_turn": [4.0, 3.0]}, "loss": 0.1, "timing/step_s": 2.0})
        path = logger.save_samples(2, [TrajectorySample(np.zeros((64, 64, 3), np.uint8),
                                                        [GridTurn(np.ones((64, 64, 3)), "add a hat", 4.0, 0.9)])])
    assert path == run.path / "samples" / "step_000002.png" and Image.open(path).size[0] > 0
    assert seen[0] == (0, {"reward/if_turn1": 4.0, "reward/if_turn2": 3.0, "loss": 0.1, "timing/step_s": 2.0})
    assert out.getvalue().splitlines()[0].startswith("step 1/4 (25%) | IF 4.00 / 3.00 | loss +0.1 | 2.00 s/step")
    assert any(p.name.startswith("events.out.tfevents") for p in run.path.iterdir())
    resumed = create_run_dir(load_config(None, ["run_name=t"]), output_dir=tmp_path, resume=True)
    with RunLogger(resumed, total_steps=4, resume_step=1, console=False) as logger:
        logger.log(2, {"loss": 0.2})
        logger.log(3, {"loss": 0.3})
    assert [(r["step"], r["loss"]) for r in read_metrics(run.path)] == [(0, 0.1), (1, 0.1), (2, 0.2), (3, 0.3)]
