"""Correlated re-noising at a stage transition.

After token-level nearest upsampling the 4 children of a parent share one noise value. Adding noise
whose 4-vector covariance is I + gamma 11^T (gamma = -1/Z^2) makes each child's noise i.i.d. again
at the sigma the next stage starts from. The reference draws it from a dense multivariate normal;
the same law is n = (I + a 11^T) z with z ~ N(0, I), since (I + a 11^T)^2 = I + (2a + 4a^2) 11^T,
and 4a^2 + 2a = gamma gives a = (-1 + sqrt(1 + 4 gamma)) / 4. O(L) instead of O(L^2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

GROUP = 4


def group_mixing(gamma: float) -> float:
    """The a with (I + a 11^T)^2 = I + gamma 11^T for groups of 4."""
    if not 1.0 + GROUP * gamma >= 0.0:
        raise ValueError(f"gamma ({gamma}) must be at least -1/4: I + gamma 11^T is no covariance below that")
    return (-1.0 + math.sqrt(1.0 + GROUP * gamma)) / GROUP


def draw_renoise(
    shape: tuple[int, int, int],
    grouped: tuple[int, int],
    gamma: float,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """(B, L, D) CPU float32 noise; tokens start..stop-1 form consecutive groups of 4 correlated by gamma.

    Image b's noise is one draw from generators[b], so it does not depend on the other images.
    """
    b, length, dim = shape
    if len(generators) != b:
        raise ValueError(f"one generator per image is needed: {len(generators)} for a batch of {b}")
    start, stop = grouped
    if not 0 <= start <= stop <= length or (stop - start) % GROUP:
        raise ValueError(
            f"grouped ({start}, {stop}) must be a range of whole groups of {GROUP} inside {length} tokens"
        )
    mixing = group_mixing(gamma)
    noise = torch.stack([torch.randn((length, dim), generator=g, dtype=torch.float32) for g in generators])
    groups = noise[:, start:stop].reshape(b, -1, GROUP, dim)
    noise[:, start:stop] = (groups + mixing * groups.sum(dim=2, keepdim=True)).reshape(b, -1, dim)
    return noise


def renoise(tokens: torch.Tensor, beta: float, alpha: float, noise: torch.Tensor) -> torch.Tensor:
    """beta * x + alpha * n: the transition from the end of one stage to the start of the next."""
    return beta * tokens + alpha * noise.to(device=tokens.device, dtype=tokens.dtype)
