"""Rectified-flow sampling of FASHN VTON v1.5: the shifted time schedule and guided Euler steps.

Time runs from 0 (noise) to 1 (image); each step ADDS dt * v. Every step evaluates the
network once on [conditional rows; null rows]; v = v_u + g (v_c - v_u), except on the last
`skip_cfg_last_n` steps, which use v_c alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

DEFAULT_MU = 1.5

# network(x, t, keep) -> velocity, for the doubled batch [conditional; null].
Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class StopSampling(Exception):
    """Raised by a step callback to stop between steps (a cancelled request)."""


def time_schedule(steps: int, mu: float = DEFAULT_MU) -> torch.Tensor:
    """steps + 1 times from 0 to 1, float32: s = linspace(1, 0), u = e^-mu / (e^-mu + 1/s - 1), reversed."""
    s = torch.linspace(1, 0, steps + 1, dtype=torch.float32)
    shift = math.exp(-mu)
    u = shift / (shift + (1 / s - 1))  # s = 0: 1/s = inf, u = 0
    return u.flip(0)


def combine(v_cond: torch.Tensor, v_null: torch.Tensor, guidance: torch.Tensor | float, guided: bool) -> torch.Tensor:
    """The step's velocity: v_u + g (v_c - v_u) when guided (also at g = 1), else v_c."""
    if not guided:
        return v_cond
    return v_null + guidance * (v_cond - v_null)


def is_guided(step: int, steps: int, skip_cfg_last_n: int) -> bool:
    """Step `step` (0-based) of `steps` uses guidance unless it is one of the last n."""
    return step < steps - skip_cfg_last_n


def euler_sample(
    velocity: Velocity,
    x: torch.Tensor,
    steps: int,
    guidance: torch.Tensor | float,
    *,
    skip_cfg_last_n: int = 1,
    mu: float = DEFAULT_MU,
    step_done: Callable[[int, int], Sequence[int] | None] | None = None,
) -> torch.Tensor:
    """Integrate x (B, ...) from t = 0 to 1 in `steps` Euler steps; x stays in its dtype.

    `guidance` is a number or a (B, 1, 1, 1) tensor (one scale per row). `step_done(i + 1,
    steps)` runs after each step and may raise StopSampling, or answer the rows (positions
    in the current x) that go on: the others leave x from the next step on (the caller's
    `velocity` must drop their conditioning too), and the rows returned are those left.
    """
    times = time_schedule(steps, mu)
    keep = _keep(x.shape[0], x.device)
    for i in range(steps):
        t = torch.full((2 * x.shape[0],), float(times[i]), dtype=x.dtype, device=x.device)
        v_cond, v_null = velocity(torch.cat([x, x]), t, keep).chunk(2)
        v = combine(v_cond, v_null, guidance, is_guided(i, steps, skip_cfg_last_n))
        x = x + (times[i + 1] - times[i]).item() * v
        rows = step_done(i + 1, steps) if step_done is not None else None
        if rows is not None and len(rows) < x.shape[0]:
            index = torch.tensor(list(rows), dtype=torch.long, device=x.device)
            x = x[index]
            if isinstance(guidance, torch.Tensor) and guidance.dim() > 0:
                guidance = guidance[index]
            keep = _keep(x.shape[0], x.device)
            if not len(rows):
                break
    return x


def _keep(batch: int, device: torch.device) -> torch.Tensor:
    """The `keep` flags of [conditional; null] rows: True for the conditional half."""
    return torch.cat([torch.ones(batch, dtype=torch.bool), torch.zeros(batch, dtype=torch.bool)]).to(device)
