"""Next-token choice for the whole batch in a few device operations, with per-row settings.

Each row keeps its own repetition guard, minimum length and random generator, so a request samples the same
tokens whether it runs alone or inside a batch. Per step: the bans of every row (DeepSeek's n-gram rule, the
end-of-sequence ban of ``min_tokens``/``ignore_eos``) are applied in one masked write, greedy rows take one
batched argmax, sampled rows share one softmax (and one top-p sort), and each draws with its own generator.
Nothing here waits for the device: the caller reads the chosen ids, the per-row failure flags and the chosen
tokens' log-probabilities (plus the top-k when a row asked for them) back in one transfer (``Choice.to_host``).

The log-probability is of the distribution the token was actually drawn from: after the bans, and for sampled rows
after temperature and top-p (renormalised over what top-p kept); for greedy rows the ``log_softmax`` of the banned
logits. It costs one ``logsumexp`` and one ``gather`` per step; the top-k one ``topk`` only when a row asks.

A row whose distribution is not finite (a NaN from the model, or a temperature so small that ``logits / T``
overflows) is flagged instead of raising inside ``torch.multinomial``: that row fails alone, the batch goes on.
Temperatures below ``MIN_TEMPERATURE`` sample as greedy: at that scale sampling and argmax agree except on ties,
and dividing by them overflows float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from predictor.engine.ngram_rolling import RollingNGramGuard
from predictor.engine.types import SamplingParams

MIN_TEMPERATURE = 1e-4


class RowSampler:
    """One row's sampling state: its guard, its generator (``None`` for greedy) and its settings."""

    def __init__(self, params: SamplingParams, eos_token_id: int, whitelist: frozenset[int], device: Any):
        self.params = params
        self.eos = eos_token_id
        if params.ngram_whitelist is not None:  # the request's own list replaces the family's, as in vLLM
            whitelist = frozenset(params.ngram_whitelist)
        self.guard = (RollingNGramGuard(params.ngram_size, params.ngram_window, whitelist)
                      if params.ngram_size else None)
        self.generator: torch.Generator | None = None
        if params.temperature >= MIN_TEMPERATURE:
            self.generator = torch.Generator(device=device)
            if params.seed is not None:
                self.generator.manual_seed(params.seed)
            else:
                self.generator.seed()

        self.ban_steps: list[int] = []  # generated lengths at which the guard banned something (loop evidence)

    def banned(self, generated: list[int]) -> set[int]:
        banned = self.guard.banned(generated) if self.guard is not None else set()
        if banned:
            self.ban_steps.append(len(generated))
        if self.params.ignore_eos or len(generated) < self.params.min_new_tokens:
            banned.add(self.eos)
        return banned


@dataclass
class Picked:
    """One row's choice on the host."""

    token: int
    failed: bool
    logprob: float
    top: list[tuple[int, float]] | None = None  # (id, logprob), most likely first; only for rows that asked


@dataclass
class Choice:
    """Device tensors of one step's choice: ``tokens`` [rows], ``failed`` [rows] (1 = no valid draw), the chosen
    tokens' log-probabilities as ``score - norm`` [rows] (subtracted on the host: one device op less per step)
    and, when a row asked, ``top_ids``/``top_logprobs`` [rows, k] (also less ``norm``)."""

    tokens: torch.Tensor
    failed: torch.Tensor
    score: torch.Tensor
    norm: torch.Tensor
    top_ids: torch.Tensor | None = None
    top_logprobs: torch.Tensor | None = None

    def to_host(self, wanted: list[int]) -> list[Picked]:
        """The step's one device-to-host read (every column in one float32 tensor: ids < 2**24 are exact).
        ``wanted``: per row, how many top log-probabilities to keep (0 = none)."""
        columns = [self.tokens.float(), self.failed.float(), self.score, self.norm]
        if self.top_ids is not None and self.top_logprobs is not None:
            columns = [c[:, None] for c in columns] + [self.top_ids.float(), self.top_logprobs]
            host = torch.cat(columns, dim=1).tolist()
        else:
            host = torch.stack(columns, dim=1).tolist()
        picked = []
        for values, k in zip(host, wanted, strict=True):
            top = None
            if k and len(values) > 4:
                width = (len(values) - 4) // 2
                top = [(int(values[4 + j]), values[4 + width + j] - values[3]) for j in range(min(k, width))]
            picked.append(Picked(int(values[0]), bool(values[1]), values[2] - values[3], top))
        return picked


def _upload(values: list[Any], device: torch.device, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Host values to the device without making the host wait (pinned memory, non-blocking copy) on CUDA."""
    host = torch.tensor(values, dtype=dtype)
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)


def apply_bans(logits: torch.Tensor, samplers: list[RowSampler], generated: list[list[int]]) -> None:
    """Each row's repetition-guard bans as -inf in ``logits`` (in place), in one upload for the whole batch."""
    vocab = logits.shape[1]
    flat: list[int] = []
    for i, (sampler, ids) in enumerate(zip(samplers, generated, strict=True)):
        flat.extend(i * vocab + t for t in sampler.banned(ids))
    if flat:
        logits.view(-1).index_fill_(0, _upload(flat, logits.device), float("-inf"))


def choose(logits: torch.Tensor, samplers: list[RowSampler], generated: list[list[int]]) -> Choice:
    """``logits``: float32 ``[rows, vocab]`` of the last position (modified in place)."""
    rows, vocab = logits.shape
    apply_bans(logits, samplers, generated)
    score, tokens = logits.max(dim=-1)  # the greedy choice and its logit (first maximum, as argmax)
    failed = torch.isnan(logits).any(dim=-1)
    norm = torch.logsumexp(logits, dim=-1)
    k = max(s.params.top_logprobs for s in samplers)
    top_ids = top_logprobs = None
    if k:
        top_logprobs, top_ids = logits.topk(min(k, vocab), dim=-1)  # logits: ``norm`` is subtracted on the host
    choice = Choice(tokens, failed, score, norm, top_ids, top_logprobs)
    sampled = [i for i, s in enumerate(samplers) if s.generator is not None]
    if sampled:
        _sample(logits, samplers, sampled, choice)
    return choice


def _sample(logits: torch.Tensor, samplers: list[RowSampler], sampled: list[int], choice: Choice) -> None:
    tokens, failed = choice.tokens, choice.failed
    index = _upload(sampled, logits.device)
    temps = _upload([[samplers[i].params.temperature] for i in sampled], logits.device, logits.dtype)
    probs = torch.softmax(logits.index_select(0, index) / temps, dim=-1)
    # a row without top-p gets an infinite threshold: batched with top-p rows it keeps exactly what it keeps alone
    top_p = [p if (p := samplers[i].params.top_p) < 1.0 else float("inf") for i in sampled]
    if min(top_p) < 1.0:
        probs = _top_p(probs, _upload(top_p, logits.device, probs.dtype))
    bad = ~torch.isfinite(probs).all(dim=-1) | ~(probs.sum(dim=-1) > 0)
    # multinomial raises (CPU) or trips a device assert (CUDA) on such rows: give them a harmless
    # distribution, draw, and report them as failed instead
    probs = torch.where(bad[:, None], torch.ones_like(probs), probs)
    draws = torch.cat([torch.multinomial(probs[j], 1, generator=samplers[i].generator)
                       for j, i in enumerate(sampled)])
    tokens.index_copy_(0, index, draws)
    failed.index_copy_(0, index, failed.index_select(0, index) | bad)
    # what multinomial drew from: the kept probabilities, renormalised
    total = torch.log(probs.sum(dim=-1, keepdim=True))
    choice.score.index_copy_(0, index, (torch.log(probs.gather(1, draws[:, None])) - total).squeeze(1))
    choice.norm.index_fill_(0, index, 0.0)
    if choice.top_ids is not None and choice.top_logprobs is not None:
        values, ids = probs.topk(choice.top_ids.shape[1], dim=-1)
        choice.top_ids.index_copy_(0, index, ids)
        choice.top_logprobs.index_copy_(0, index, torch.log(values) - total)  # with norm 0 for these rows


def _top_p(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep, per row, the smallest prefix of tokens by probability whose mass reaches its ``top_p``."""
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    cumulative = torch.cumsum(sorted_probs, dim=-1)
    drop = cumulative - sorted_probs > top_p[:, None]  # always keeps the top token
    sorted_probs = sorted_probs.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
