"""The engine's Prometheus metrics, mirrored into Ray's metrics export from inside each replica.

Under Ray Serve the ``/metrics`` route answers from whichever replica the request reached, so per-replica engine
figures come from Ray's per-node export instead: every few seconds this copies the ``deepseek_ocr_*`` gauges and
counters of the replica's registry into ``ray.serve.metrics`` objects, which add ``application``, ``deployment``
and ``replica`` tags (exported as ``ray_deepseek_ocr_*``). Ray drops a gauge that is not set again within about
two report intervals, so the gauges are set on every refresh, idle or not: an idle replica reads 0, not "no data".
Histograms are not mirrored; Serve's own ``ray_serve_deployment_processing_latency_ms`` covers latency.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import REGISTRY

log = logging.getLogger(__name__)

PREFIX = "deepseek_ocr_"
REFRESH_SECONDS = 2.0


class MetricsMirror:
    def __init__(self) -> None:
        self._gauges: dict[str, Any] = {}
        self._counters: dict[str, Any] = {}
        self._last: dict[tuple[str, tuple], float] = {}

    def refresh(self) -> None:
        from ray.serve import metrics as ray_metrics

        for family in REGISTRY.collect():
            if not family.name.startswith(PREFIX) or family.type not in ("gauge", "counter"):
                continue
            for sample in family.samples:
                if family.type == "counter" and not sample.name.endswith("_total"):
                    continue  # the _created timestamp
                tags = dict(sample.labels)
                if family.type == "gauge":
                    gauge = self._gauges.get(family.name)
                    if gauge is None:
                        gauge = ray_metrics.Gauge(family.name, description=family.documentation,
                                                  tag_keys=tuple(sorted(tags)))
                        self._gauges[family.name] = gauge
                    gauge.set(sample.value, tags=tags or None)
                    continue
                counter = self._counters.get(family.name)
                if counter is None:
                    counter = ray_metrics.Counter(family.name, description=family.documentation,
                                                  tag_keys=tuple(sorted(tags)))
                    self._counters[family.name] = counter
                key = (family.name, tuple(sorted(tags.items())))
                delta = sample.value - self._last.get(key, 0.0)
                if delta > 0:
                    counter.inc(delta, tags=tags or None)
                self._last[key] = sample.value

    async def run(self, period: float = REFRESH_SECONDS) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - metrics must never take a replica down
                log.exception("mirroring engine metrics into Ray failed")
            await asyncio.sleep(period)
