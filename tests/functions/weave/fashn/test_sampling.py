"""The schedule, the guidance formula and the unguided last step, checked directly."""

from __future__ import annotations

import pytest
import torch

from functions.weave.fashn.sampling import combine, euler_sample, is_guided, time_schedule

SPEC_30 = [
    0,
    0.0076353969,
    0.0156878382,
    0.0241924580,
    0.0331884362,
    0.0427196287,
    0.0528352633,
    0.0635907874,
    0.0750489160,
    0.0872807950,
    0.1003675610,
    0.1144020855,
    0.1294911951,
    0.1457583755,
    0.1633471698,
    0.1824255139,
    0.2031909823,
    0.2258777320,
    0.2507652938,
    0.2781902552,
    0.3085615039,
    0.3423808813,
    0.3802707791,
    0.4230131805,
    0.4716041982,
    0.5273321867,
    0.5918943882,
    0.6675720215,
    0.7575066090,
    0.8661447763,
    1.0,
]


def test_schedule_for_30_steps_is_the_published_one() -> None:
    times = time_schedule(30)
    assert times.dtype == torch.float32 and len(times) == 31
    assert torch.allclose(times, torch.tensor(SPEC_30), atol=1e-7, rtol=0)


@pytest.mark.parametrize("steps", [1, 4, 20, 50])
def test_schedule_is_the_closed_form_from_noise_to_image(steps: int) -> None:
    times = time_schedule(steps).double()
    x = torch.arange(steps + 1, dtype=torch.float64) / steps
    closed = x / (x + torch.exp(torch.tensor(1.5, dtype=torch.float64)) * (1 - x))
    assert torch.allclose(times, closed, atol=1e-6)
    assert times[0] == 0 and times[-1] == 1 and bool((times[1:] > times[:-1]).all())


def test_guidance_is_null_plus_scale_times_difference_even_at_one() -> None:
    c, u = torch.tensor([3.0]), torch.tensor([1.0])
    assert combine(c, u, 1.5, True).item() == 4.0
    assert combine(c, u, 1.0, True).item() == 3.0
    assert combine(c, u, 1.5, False).item() == 3.0
    assert [is_guided(i, 30, 1) for i in (0, 28, 29)] == [True, True, False]
    assert [is_guided(i, 5, 2) for i in range(5)] == [True, True, True, False, False]


def test_euler_steps_run_conditional_then_null_and_the_last_step_unguided() -> None:
    """A fake network whose conditional velocity is 1 and null velocity 0: guided steps move
    by g * dt, the unguided last step by dt."""
    calls = []

    def velocity(x: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        calls.append((x.shape[0], t.tolist(), keep.tolist()))
        return keep.float().view(-1, 1).expand_as(x).clone()

    steps, g = 4, 1.5
    times = time_schedule(steps)
    out = euler_sample(velocity, torch.zeros(2, 1), steps, g, skip_cfg_last_n=1)
    assert [c[0] for c in calls] == [4] * steps
    assert calls[0][2] == [True, True, False, False]
    assert calls[1][1] == pytest.approx([float(times[1])] * 4)
    expected = g * float(times[steps - 1]) + float(times[steps] - times[steps - 1])
    assert out[0, 0].item() == pytest.approx(expected, abs=1e-6)


def test_step_callback_can_stop_sampling() -> None:
    class Stop(Exception):
        pass

    seen = []

    def step_done(k: int, n: int) -> None:
        seen.append((k, n))
        if k == 2:
            raise Stop

    with pytest.raises(Stop):
        euler_sample(lambda x, t, keep: torch.zeros_like(x), torch.zeros(1, 1), 5, 1.5, step_done=step_done)
    assert seen == [(1, 5), (2, 5)]


def test_rows_the_step_callback_leaves_out_drop_from_the_next_step_and_the_others_stay_the_same() -> None:
    """A network whose velocity depends on each row alone: dropping row 1 after step 2 leaves
    rows 0 and 2 exactly as in the full run, and later steps evaluate only the rows left."""
    sizes = []

    def velocity(x: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        return torch.where(keep.view(-1, 1), 1.0 - x, -x)

    x0, g = torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([[1.0], [2.0], [3.0]])  # a scale per row
    full = euler_sample(velocity, x0, 5, g)
    sizes.clear()
    dropped = euler_sample(velocity, x0, 5, g, step_done=lambda k, n: [0, 2] if k == 2 else None)
    assert sizes == [6, 6, 4, 4, 4]
    assert torch.equal(dropped, full[[0, 2]])
    assert euler_sample(velocity, x0, 5, g, step_done=lambda k, n: []).shape[0] == 0
