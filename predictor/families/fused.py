"""Fewer device operations per decode step: fused forwards for the text model's RMSNorm, RoPE and attention.

A decode step is a few small kernels per layer, so on a fast GPU its cost is the host's time to queue them
(docs/PERFORMANCE.md). transformers' text modules of both families (``UnlimitedOcrText*`` and
``DeepseekOcr2Text*``, the same Llama-style stack) spend many of those operations on elementwise bookkeeping:

- RMSNorm: float32 cast, pow, mean, add, rsqrt, mul, cast, mul (8); here one ``torch.nn.functional.rms_norm``
  (float32 weights and activations), or cast, ``rms_norm``, cast, weight multiply in lower precision, which
  rounds exactly where transformers' module rounds;
- rotary embedding: position x frequencies, cat, cos, sin, scale and casts once per step (~10); here two row
  lookups in tables computed at load time with the same float32 formula;
- applying RoPE: two unsqueezes, and per tensor two slices, a negation, a cat, two multiplies and an add (16 per
  layer); here per tensor one ``roll`` against a sine table whose first half carries the sign, two multiplies and
  an add (8 per layer).

``fuse_text_model`` swaps the forwards of these module instances (never their classes, never transformers'
module globals) and is called once, at load time, by ``ModelFamily.load``. It swaps only the classes listed
here, whose forwards were read, and only with the default RoPE; anything else keeps transformers' forward.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

import torch

log = logging.getLogger(__name__)

PREFIXES = ("UnlimitedOcrText", "DeepseekOcr2Text")


def fuse_text_model(model: Any) -> dict[str, int]:
    """Swap the fused forwards into ``model``'s text modules; returns how many modules of each kind changed."""
    counts = {"rms_norm": 0, "rotary": 0, "attention": 0}
    rotaries = [m for m in model.modules() if _is(m, "RotaryEmbedding")]
    if len(rotaries) != 1 or rotaries[0].rope_type != "default":
        log.info("fused decode forwards not applied: %s", "not one text rotary embedding" if len(rotaries) != 1
                 else f"rope type {rotaries[0].rope_type!r}")
        return counts
    for module in model.modules():
        if _is(module, "RMSNorm"):
            module.forward = types.MethodType(_rms_norm_forward, module)
            counts["rms_norm"] += 1
        elif _is(module, "Attention"):
            module.forward = types.MethodType(_attention_forward, module)
            counts["attention"] += 1
    _install_rotary(rotaries[0], model)
    counts["rotary"] = 1
    log.info("fused decode forwards: %s", counts)
    return counts


def _is(module: Any, role: str) -> bool:
    return type(module).__name__ in {prefix + role for prefix in PREFIXES}


def _rms_norm_forward(self: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    shape = (hidden_states.shape[-1],)
    if hidden_states.dtype == torch.float32 and self.weight.dtype == torch.float32:
        return torch.nn.functional.rms_norm(hidden_states, shape, self.weight, self.variance_epsilon)
    normed = torch.nn.functional.rms_norm(hidden_states.float(), shape, None, self.variance_epsilon)
    return self.weight * normed.to(hidden_states.dtype)


def _install_rotary(rotary: Any, model: Any) -> None:
    """Tables of cos and signed sin for every position the model accepts, as transformers computes them per step."""
    dtype = next(model.parameters()).dtype
    inv_freq = rotary.inv_freq.float()
    positions = torch.arange(int(rotary.max_seq_len_cached), device=inv_freq.device).float()
    freqs = positions[:, None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = (emb.cos() * rotary.attention_scaling).to(dtype)
    sin = (emb.sin() * rotary.attention_scaling).to(dtype)
    half = sin.shape[-1] // 2
    # rotate_half(x) * sin == roll(x, half) * signed: the first half of rotate_half(x) is -x2, which roll puts x2 at
    sin[:, :half].neg_()
    rotary.cos_table, rotary.signed_sin_table = cos, sin
    rotary.forward = types.MethodType(_rotary_forward, rotary)


def _rotary_forward(self: Any, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[batch, 1, seq, head_dim]`` cos and signed sin: broadcast over heads as the fused attention applies them."""
    index = position_ids[:, None]
    return self.cos_table[index], self.signed_sin_table[index]


def _rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    return x * cos + x.roll(x.shape[-1] // 2, -1) * signed_sin


def _attention_forward(self: Any, hidden_states: torch.Tensor, position_embeddings: Any = None,
                       attention_mask: Any = None, cache: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """transformers' text attention (same projections, cache update and attention interface) with fused RoPE."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)
    query = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
    key = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
    value = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
    cos, signed_sin = position_embeddings
    query, key = _rope(query, cos, signed_sin), _rope(key, cos, signed_sin)
    if cache is not None:
        key, value = cache.update(key, value, self.layer_idx, kwargs=kwargs)
    eager = sys.modules[type(self).__module__].eager_attention_forward
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager)
    output, weights = interface(self, query, key, value, attention_mask, dropout=0.0, scaling=self.scaling,
                                **kwargs)
    output = output.reshape(*input_shape, -1).contiguous()
    return self.o_proj(output), weights
