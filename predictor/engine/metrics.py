"""Prometheus metrics of the engine. kserve serves the default registry on /metrics.

``deepseek_ocr_requests_in_flight`` (queued + running) is the signal the Helm chart autoscales on. The three
occupancy gauges are read from each engine's ``EngineStats`` in one snapshot per scrape, so they always add up.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
_TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)

BATCH_SIZE = Histogram("deepseek_ocr_batch_size", "Rows per decode step", buckets=(1, 2, 4, 8, 16, 32, 64, 128))
PROMPT_TOKENS = Counter("deepseek_ocr_prompt_tokens", "Prompt tokens prefilled (image tokens included)")
GENERATED_TOKENS = Counter("deepseek_ocr_generation_tokens", "Tokens generated")
TTFT = Histogram("deepseek_ocr_time_to_first_token_seconds", "Arrival to first generated token",
                 buckets=_LATENCY_BUCKETS)
TPOT = Histogram("deepseek_ocr_time_per_output_token_seconds", "Mean time per generated token after the first",
                 buckets=_TPOT_BUCKETS)
E2E = Histogram("deepseek_ocr_request_latency_seconds", "Arrival to last token", buckets=_LATENCY_BUCKETS)
WAIT = Histogram("deepseek_ocr_request_wait_seconds",
                 "Per page (one engine request): from taking its engine slot to the start of its prefill (waiting "
                 "for its turn, decoding its image, waiting for a prefill slot)", buckets=_LATENCY_BUCKETS)
FINISHED = Counter("deepseek_ocr_requests_finished", "Finished requests by reason", ["reason"])
REJECTED = Counter("deepseek_ocr_requests_rejected", "Requests refused before generation", ["reason"])

_OCCUPANCY = (
    ("deepseek_ocr_requests_in_flight", "Generation requests admitted and not finished (queued + running)"),
    ("deepseek_ocr_requests_queued", "Admitted requests not decoding yet: waiting for their turn, decoding their "
                                     "image, waiting for or in prefill"),
    ("deepseek_ocr_requests_running", "Requests decoding in the running batch"),
)


class _Occupancy:
    """A collector reading (in flight, running) from every live engine's stats, once per scrape."""

    def __init__(self) -> None:
        self.sources: weakref.WeakSet[Any] = weakref.WeakSet()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families(0, 0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_flight = running = 0
        for source in list(self.sources):
            f, r = source.occupancy()
            in_flight, running = in_flight + f, running + r
        return self._families(in_flight, running)

    @staticmethod
    def _families(in_flight: int, running: int) -> Iterator[GaugeMetricFamily]:
        for (name, documentation), value in zip(_OCCUPANCY, (in_flight, in_flight - running, running), strict=True):
            yield GaugeMetricFamily(name, documentation, value=value)


_COLLECTOR = _Occupancy()
REGISTRY.register(_COLLECTOR)


def watch(source: Any) -> None:
    """Count ``source.occupancy()`` (in flight, running) in the occupancy gauges while ``source`` lives."""
    _COLLECTOR.sources.add(source)
