"""DPM-Solver++ 2M for flow matching ("dpm2", the DiffusionNFT / Edit-R1 rollout solver).

Reference: NVlabs/DiffusionNFT ``flow_grpo/diffusers_patch/solver.py`` (``dpm_step`` with order 2,
``ddim_update``, ``multistep_dpm_solver_second_order_update``); the same 2M update as diffusers
``DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction",
algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint")``; Lu et al. 2022,
"DPM-Solver++" (multistep 2M). Flow parametrisation: alpha = 1 - sigma, data prediction
x0_hat = x - sigma v.
"""

from __future__ import annotations

import math

from torch import Tensor

from edit_rl.flow._tensor import upcast
from edit_rl.flow.interpolation import x0_from_velocity


def log_snr(sigma: float) -> float:
    """lambda = log(alpha / sigma) with alpha = 1 - sigma (half log-SNR of the flow path).

    DiffusionNFT ``solver.py``: ``torch.log(alpha_t) - torch.log(sigma_t)``. -inf at sigma = 1,
    +inf at sigma = 0.
    """
    if sigma >= 1.0:
        return -math.inf
    if sigma <= 0.0:
        return math.inf
    return math.log((1.0 - sigma) / sigma)


def ddim_step(x: Tensor, x0_hat: Tensor, sigma: float, sigma_next: float) -> Tensor:
    """Deterministic DDIM (eta = 0): x' = (1 - sigma') x0_hat + sigma' eps_hat,
    eps_hat = (x - (1 - sigma) x0_hat) / sigma.

    DiffusionNFT ``solver.py::ddim_update`` with eta = 0. With x0_hat = x - sigma v this is
    algebraically the Euler step x + (sigma' - sigma) v.
    """
    eps_hat = (x - (1.0 - sigma) * x0_hat) / sigma
    return (1.0 - sigma_next) * x0_hat + sigma_next * eps_hat


def dpm_solver_2m_update(
    x: Tensor,
    x0_hat: Tensor,
    prev_x0_hat: Tensor,
    sigma_prev: float,
    sigma: float,
    sigma_next: float,
) -> Tensor:
    """Multistep DPM-Solver++(2M), midpoint form:

    h = lambda' - lambda, h_prev = lambda - lambda_prev, r0 = h_prev / h,
    D0 = m0, D1 = (m0 - m1) / r0, x' = (sigma'/sigma) x - alpha' (e^{-h} - 1) (D0 + D1 / 2),
    with m0 = x0_hat (at sigma), m1 = prev_x0_hat (at sigma_prev), alpha' = 1 - sigma'.

    DiffusionNFT ``solver.py::multistep_dpm_solver_second_order_update`` (= diffusers').

    sigma_prev = 1 (lambda_prev = -inf): h_prev = +inf, r0 = +inf, so D1 = 0 and the step is the
    first-order DPM-Solver++ / DDIM step. This is exactly what both references compute through
    IEEE arithmetic (log(0) = -inf, 1 / inf = 0, 0 * (m0 - m1) = 0); here the limit is taken
    explicitly. So on a grid starting at 1 the second step is also first order.
    """
    lam_prev, lam, lam_next = log_snr(sigma_prev), log_snr(sigma), log_snr(sigma_next)
    h = lam_next - lam
    coef = (1.0 - sigma_next) * math.expm1(-h)  # alpha' (e^{-h} - 1)
    x_next = (sigma_next / sigma) * x - coef * x0_hat
    if math.isinf(lam_prev):  # sigma_prev = 1: D1 = 0
        return x_next
    r0 = (lam - lam_prev) / h
    d1 = (x0_hat - prev_x0_hat) / r0
    return x_next - 0.5 * coef * d1


def dpm2_step(
    x: Tensor,
    v: Tensor,
    sigmas: Tensor,
    index: int,
    prev_x0_hat: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """One "dpm2" step from sigmas[index] to sigmas[index + 1]; returns (x_next, x0_hat).

    Schedule of DiffusionNFT ``solver.py::dpm_step`` (order 2): step 0 and the last step are DDIM
    with eta = 0 (`ddim_step`); every other step is `dpm_solver_2m_update` using the previous
    step's data prediction ``prev_x0_hat`` (pass the x0_hat this function returned at index - 1)
    and sigmas[index - 1]. diffusers' scheduler does the same (first-order DPM-Solver++ at step 0
    and, with ``final_sigmas_type="zero"``, at the last step; both equal DDIM eta = 0).
    Computed in float32 (or float64), coefficients in float64 like the reference.
    """
    n = sigmas.numel() - 1
    if not 0 <= index < n:
        raise IndexError(f"index {index} out of range for a grid of {n} steps")
    sigma, sigma_next = float(sigmas[index]), float(sigmas[index + 1])
    x, v = upcast(x), upcast(v)
    x0_hat = x0_from_velocity(x, sigma, v)
    if index == 0 or index == n - 1:
        return ddim_step(x, x0_hat, sigma, sigma_next), x0_hat
    if prev_x0_hat is None:
        raise ValueError(f"dpm2 step {index} needs prev_x0_hat from step {index - 1}")
    x_next = dpm_solver_2m_update(
        x, x0_hat, upcast(prev_x0_hat), float(sigmas[index - 1]), sigma, sigma_next
    )
    return x_next, x0_hat
