"""MoE experts as dense batched matmuls over every expert: no host sync, for GPUs without a fast grouped GEMM.

PyTorch's ``grouped_mm`` has its fast kernel only on compute capability 9 and 10; elsewhere (GB10, sm_121) it falls
back to reading the group offsets on the host and one matmul per expert: a sync and dozens of matmuls per layer per
decode step. When a decode batch hits most experts anyway (32 rows x 6 of 64 experts hit nearly all), running all
experts on all rows reads the same weights, in two batched matmuls, with a dense ``[rows, experts]`` routing-weight
matrix (zero where a row did not pick an expert) summing the results. Nothing waits for the device. The probe in
``experts.py`` offers it as the candidate ``dense`` and checks it against the float32 reference like the others.
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "dense"
LIMIT_BYTES = 256 << 20  # largest [experts, rows, 2 x intermediate] activation this path may allocate


def fits(module: Any, tokens: int) -> bool:
    experts, width = module.gate_up_proj.shape[0], max(module.gate_up_proj.shape[1:])
    return experts * tokens * width * module.gate_up_proj.element_size() <= LIMIT_BYTES


def dense_experts_forward(module: Any, hidden: torch.Tensor, index: torch.Tensor,
                          weights: torch.Tensor) -> torch.Tensor:
    """``hidden`` [tokens, H], ``index``/``weights`` [tokens, top_k] -> [tokens, H], as transformers' experts."""
    up_w, down_w = module.gate_up_proj, module.down_proj
    up = hidden @ (up_w if module.is_transposed else up_w.transpose(1, 2))  # [E, tokens, 2I] (broadcast batch)
    act = module._apply_gate(up) if module.has_gate else module.act_fn(up)
    down = act @ (down_w if module.is_transposed else down_w.transpose(1, 2))  # [E, tokens, H]
    routing = torch.zeros(hidden.shape[0], up_w.shape[0], dtype=down.dtype, device=hidden.device)
    routing.scatter_add_(1, index, weights.to(down.dtype))  # [tokens, E], zero where not routed
    return torch.einsum("eth,te->th", down, routing).to(hidden.dtype)
