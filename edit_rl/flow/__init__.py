"""Flow-matching basics and samplers.

Conventions (docs/algorithms.md §1): t (= sigma) in [0, 1], t = 1 is pure noise,
x_t = (1 - t) x0 + t eps, v = eps - x0, x0_hat = x_t - t v.
"""

from edit_rl.flow.dpm_solver import ddim_step, dpm2_step, dpm_solver_2m_update, log_snr
from edit_rl.flow.euler import euler_step
from edit_rl.flow.interpolation import interpolate, velocity_target, x0_from_velocity
from edit_rl.flow.sampling import SamplingResult, sample
from edit_rl.flow.sde import SDEStepOutput, sde_step_with_logprob
from edit_rl.flow.sigmas import calculate_shift, exponential_time_shift, kontext_sigmas, linear_sigmas

__all__ = [
    "SDEStepOutput",
    "SamplingResult",
    "calculate_shift",
    "ddim_step",
    "dpm2_step",
    "dpm_solver_2m_update",
    "euler_step",
    "exponential_time_shift",
    "interpolate",
    "kontext_sigmas",
    "linear_sigmas",
    "log_snr",
    "sample",
    "sde_step_with_logprob",
    "velocity_target",
    "x0_from_velocity",
]
