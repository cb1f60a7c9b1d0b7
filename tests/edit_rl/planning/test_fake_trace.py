"""trace_call counts FLOPs and the bytes a call allocates, on fake tensors."""
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from edit_rl.planning.fake_trace import trace_call
from edit_rl.planning.transformer_costs import full_depth_flops, full_depth_training_bytes, per_sample_and_fixed


def test_linear_flops_and_output_bytes():
    with FakeTensorMode():
        layer = torch.nn.Linear(64, 128, bias=False)
        x = torch.randn(32, 64)
        trace = trace_call(lambda: layer(x))
    assert trace.flops == 2 * 32 * 64 * 128
    assert trace.peak_bytes == 32 * 128 * 4  # the output only; input and weight were made before


def test_freed_temporaries_leave_the_peak_not_the_live_count():
    with FakeTensorMode():
        x = torch.randn(1024, 1024)

        def chain():
            for _ in range(5):
                y = x * 2  # 4 MiB each, freed when the next replaces it
                del y

        trace = trace_call(chain)
    assert trace.peak_bytes == 1024 * 1024 * 4


def test_cpu_flash_attention_flops_and_no_attention_matrix():
    b, h, length, d = 2, 4, 256, 32
    with FakeTensorMode():
        q = torch.randn(b, h, length, d, dtype=torch.bfloat16)
        trace = trace_call(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert trace.flops == 4 * b * h * length * length * d  # QK^T and PV
    assert trace.peak_bytes < b * h * length * length * 2  # the L x L matrix is never materialised


def test_depth_and_batch_formulas():
    assert full_depth_flops(100, {"a": 10, "b": 3}, {"a": 19, "b": 38}) == 100 + 18 * 10 + 37 * 3
    assert full_depth_training_bytes(50, {"a": 2}, {"a": 5}) == 58
    assert per_sample_and_fixed(7, 10) == (3, 4)
