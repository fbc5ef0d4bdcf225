"""Prometheus metrics of the engine. kserve serves the default registry on /metrics.

``deepseek_ocr_requests_in_flight`` (queued + running) is the signal the Helm chart autoscales on.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
_TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)

IN_FLIGHT = Gauge("deepseek_ocr_requests_in_flight", "Generation requests admitted and not finished (queued + running)")
RUNNING = Gauge("deepseek_ocr_requests_running", "Rows in the running decode batch")
QUEUED = Gauge("deepseek_ocr_requests_queued", "Requests waiting for a slot in the batch")
BATCH_SIZE = Histogram("deepseek_ocr_batch_size", "Rows per decode step", buckets=(1, 2, 4, 8, 16, 32, 64, 128))
PROMPT_TOKENS = Counter("deepseek_ocr_prompt_tokens", "Prompt tokens prefilled (image tokens included)")
GENERATED_TOKENS = Counter("deepseek_ocr_generation_tokens", "Tokens generated")
TTFT = Histogram("deepseek_ocr_time_to_first_token_seconds", "Arrival to first generated token",
                 buckets=_LATENCY_BUCKETS)
TPOT = Histogram("deepseek_ocr_time_per_output_token_seconds", "Mean time per generated token after the first",
                 buckets=_TPOT_BUCKETS)
E2E = Histogram("deepseek_ocr_request_latency_seconds", "Arrival to last token", buckets=_LATENCY_BUCKETS)
FINISHED = Counter("deepseek_ocr_requests_finished", "Finished requests by reason", ["reason"])
REJECTED = Counter("deepseek_ocr_requests_rejected", "Requests refused before generation", ["reason"])
