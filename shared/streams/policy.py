"""How the runner retries: `RunnerConfig` (attempts, backoff, reclaim idle time, read
block) from Settings, and which events are results (kept and retried, never dropped)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Settings
from shared.events import CloudEvent
from shared.routing import FAILURE_EVENT_FOR


@dataclass(frozen=True)
class RunnerConfig:
    """The runner's knobs, from Settings."""

    max_attempts: int
    backoff_s: float
    backoff_max_s: float
    claim_idle_ms: int
    block_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        return cls(
            max_attempts=max(1, settings.runner_max_attempts),
            backoff_s=settings.runner_backoff_s,
            backoff_max_s=settings.runner_backoff_max_s,
            claim_idle_ms=settings.runner_claim_idle_ms,
            block_ms=max(1, settings.runner_block_ms),
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)


def is_result(event: CloudEvent) -> bool:
    """A function's result (progress, completed, failed), as opposed to a job request: a
    request that cannot be delivered fails its job; a result is kept and retried."""
    return event.get_type() not in FAILURE_EVENT_FOR
