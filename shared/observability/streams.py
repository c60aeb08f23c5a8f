"""Queue metrics read from Redis at scrape time, as KEDA reads them: per stream and group.

proteus_stream_length{stream}                 entries the stream holds (XLEN)
proteus_stream_pending_entries{stream,group}  delivered but not acknowledged (XPENDING)
proteus_stream_lag_entries{stream,group}      not yet delivered to the group
proteus_stream_dead_letters{stream}           entries in the stream's dead-letter stream

The `stream` label is the routing table's name without REDIS_KEY_PREFIX (a fixed set).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.routing import ROUTES, Route, prefixed

log = logging.getLogger("proteus.metrics")
LAG_SCAN_LIMIT = 100_000  # Redis < 7 reports no lag: count at most this many undelivered entries


class StreamCollector(Collector):
    """Reads XLEN / XINFO GROUPS of every route's stream when Prometheus scrapes."""

    def __init__(self, client: redis.Redis, prefix: str = "", routes: Sequence[Route] = ROUTES) -> None:
        self.client = client
        self.prefix = prefix
        self.routes = tuple(routes)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        length = GaugeMetricFamily("proteus_stream_length", "Entries a stream holds.", labels=["stream"])
        pending = GaugeMetricFamily(
            "proteus_stream_pending_entries",
            "Entries delivered to a consumer group and not acknowledged yet.",
            labels=["stream", "group"],
        )
        lag = GaugeMetricFamily(
            "proteus_stream_lag_entries", "Entries not yet delivered to a consumer group.", labels=["stream", "group"]
        )
        dead = GaugeMetricFamily(
            "proteus_stream_dead_letters", "Entries in a stream's dead-letter stream.", labels=["stream"]
        )
        up = GaugeMetricFamily("proteus_stream_metrics_up", "1 when Redis answered this scrape.")
        try:
            for route in self.routes:
                stream = prefixed(route.stream, self.prefix)
                length.add_metric([route.stream], float(self.client.xlen(stream)))
                dead.add_metric(
                    [route.stream], float(self.client.xlen(prefixed(route.dead_letter_stream, self.prefix)))
                )
                group = self._group(stream, route.group)
                if group is not None:
                    pending.add_metric([route.stream, route.group], float(group.get("pending") or 0))
                    lag.add_metric([route.stream, route.group], float(self._lag(stream, group)))
            up.add_metric([], 1.0)
        except redis.RedisError as exc:
            log.warning("stream metrics unavailable: %s", exc.__class__.__name__)
            up.add_metric([], 0.0)
        yield from (length, pending, lag, dead, up)

    def _group(self, stream: str, name: str) -> dict[str, Any] | None:
        try:
            groups = self.client.xinfo_groups(stream)
        except redis.ResponseError:  # no such stream yet
            return None
        for group in groups:
            group_name = group.get("name")
            if (group_name.decode() if isinstance(group_name, bytes) else group_name) == name:
                return dict(group)
        return None

    def _lag(self, stream: str, group: dict[str, Any]) -> int:
        if group.get("lag") is not None:  # Redis >= 7
            return int(group["lag"])
        last = group.get("last-delivered-id") or "0-0"
        last = last.decode() if isinstance(last, bytes) else str(last)
        return len(self.client.xrange(stream, min=f"({last}", max="+", count=LAG_SCAN_LIMIT) or ())
