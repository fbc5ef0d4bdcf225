"""Per-row next-token choice: DeepSeek's repetition guard, minimum length, then greedy or seeded sampling.

Each row keeps its own settings and random generator, so a request samples the same tokens whether it runs
alone or inside a batch.
"""

from __future__ import annotations

from typing import Any

import torch

from predictor.engine.ngram_rolling import RollingNGramGuard
from predictor.engine.types import SamplingParams


class RowSampler:
    def __init__(self, params: SamplingParams, eos_token_id: int, whitelist: frozenset[int], device: Any):
        self.params = params
        self.eos = eos_token_id
        self.guard = (RollingNGramGuard(params.ngram_size, params.ngram_window, whitelist)
                      if params.ngram_size else None)
        self.generator: torch.Generator | None = None
        if params.temperature > 0:
            self.generator = torch.Generator(device=device)
            if params.seed is not None:
                self.generator.manual_seed(params.seed)
            else:
                self.generator.seed()

    def choose(self, logits: torch.Tensor, generated: list[int], hint: int | None = None) -> int:
        """``logits``: the float32 1-D row of the last position (may be modified in place).

        ``hint`` is the row's unmasked argmax, computed once for the whole batch: for greedy rows it is the answer
        whenever it is not banned, since masking other tokens cannot change the maximum.
        """
        banned = self.guard.banned(generated) if self.guard is not None else set()
        if self.params.ignore_eos or len(generated) < self.params.min_new_tokens:
            banned.add(self.eos)
        if self.generator is None and hint is not None and hint not in banned:
            return hint
        if banned:
            logits[list(banned)] = float("-inf")
        if self.generator is None:
            return int(torch.argmax(logits))
        return self._sample(logits)

    def _sample(self, logits: torch.Tensor) -> int:
        probs = torch.softmax(logits / self.params.temperature, dim=-1)
        if self.params.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            cumulative = torch.cumsum(sorted_probs, dim=-1)
            # keep the smallest prefix whose mass reaches top_p (always at least the top token)
            drop = cumulative - sorted_probs > self.params.top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=self.generator))
