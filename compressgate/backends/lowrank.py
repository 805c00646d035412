"""Low-rank factorization of 2-D kernels, numpy only: the rank a ``LowRank`` spec gives a
kernel (by retained energy or by a parameter budget), whether the factors save
parameters, and the two factors. ``backends/tf/factorize.py`` rebuilds the Keras model.

A kernel ``W`` (m inputs x n outputs) of rank r is ``A @ B`` with ``A = U_r S_r^1/2``
(m x r) and ``B = S_r^1/2 V_r^T`` (r x n): the singular values are split evenly so both
factors have ranges of the same size, which int8 quantizes alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compressgate.recipes import LowRank


@dataclass(frozen=True)
class Factor:
    """One kernel's plan: its shape, the chosen rank, the energy that rank keeps, and
    why it stays whole (``skip``) when it does."""

    name: str
    m: int
    n: int
    rank: int
    energy: float
    skip: str | None = None

    @property
    def params(self) -> int:
        """Kernel parameters after factorization (before, when skipped)."""
        return self.m * self.n if self.skip else self.rank * (self.m + self.n)


def rank_by_energy(singular_values: np.ndarray, energy: float) -> int:
    """The smallest r whose r largest singular values keep ``energy`` of the sum of
    squares (at least 1; a zero kernel keeps rank 1)."""
    squares = np.sort(np.asarray(singular_values, dtype=np.float64))[::-1] ** 2
    total = squares.sum()
    if total == 0:
        return 1
    kept = np.cumsum(squares) / total
    # A tolerance: energy=1.0 must not ask for a rank beyond the last float rounding.
    return int(min(len(squares), np.searchsorted(kept, energy - 1e-12) + 1))


def rank_by_budget(m: int, n: int, budget: float) -> int:
    """The largest r with r * (m + n) <= budget * m * n (0 when even rank 1 exceeds it)."""
    return int(np.floor(budget * m * n / (m + n) + 1e-9))


def saves(m: int, n: int, rank: int) -> bool:
    """Whether two factors of ``rank`` hold fewer parameters than the m x n kernel."""
    return rank >= 1 and rank * (m + n) < m * n


def plan(name: str, kernel: np.ndarray, spec: LowRank) -> Factor:
    """The rank ``spec`` gives the 2-D ``kernel`` (m x n), or why it stays whole."""
    m, n = kernel.shape
    singular = np.linalg.svd(kernel.astype(np.float64), compute_uv=False)
    squares = singular ** 2
    if spec.budget is not None:
        rank = rank_by_budget(m, n, spec.budget)
    else:
        rank = rank_by_energy(singular, spec.energy)
    rank = min(rank, len(singular))
    kept = float(squares[:rank].sum() / squares.sum()) if squares.sum() > 0 else 1.0
    skip = None
    if rank < 1:
        skip = f"budget {spec.budget} allows no rank of a {m}x{n} kernel"
    elif not saves(m, n, rank):
        skip = (f"rank {rank} of a {m}x{n} kernel saves nothing "
                f"({rank * (m + n)} >= {m * n} parameters)")
    return Factor(name, m, n, rank, round(kept, 6), skip)


def factorize(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, B), m x rank and rank x n, with A @ B the best rank-``rank`` approximation of
    ``kernel`` (exact at full rank)."""
    u, s, vt = np.linalg.svd(kernel.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    a = u[:, :rank] * root
    b = root[:, None] * vt[:rank]
    return a.astype(kernel.dtype), b.astype(kernel.dtype)
