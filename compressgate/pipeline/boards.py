"""A result measured on a board (``compressgate.measure.remote``): what the device check
judges.

The board gets the new file, the float reference and the accepted file (when it differs
from the new one). It times new against float and new against accepted side by side,
measures peak memory of new and accepted, and computes the new file's outputs on the
test split, which are compared here with this machine's (the kernels of another
architecture against those the CI machine ran). Never cached: a fact about the board.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compressgate.measure import remote, targets
from compressgate.measure.stats import LatencyPairs
from compressgate.pipeline.record import BoardFigures, LatencyFigures
from compressgate.recipes import REFERENCE


@dataclass(frozen=True)
class BoardRun:
    """One board's figures for a result, and the pairs its latency rows are judged on."""

    figures: BoardFigures
    # New against float, and new against accepted, timed on the board (None: not timed).
    pairs: LatencyPairs | None = None
    side: LatencyPairs | None = None
    fingerprint: dict | None = None
    versions: dict | None = None

    @property
    def measured(self) -> bool:
        return self.figures.error is None


def measure(runner, model: str, recipe: str, host: remote.Host, accepted: bytes | None, *,
            pairs: int, latency: bool = True) -> BoardRun:
    """``recipe``'s file on ``host``, next to the float reference and ``accepted``."""
    out, ref = runner.outcome(model, recipe), runner.outcome(model, REFERENCE)
    assert out.tflite is not None and out.measurement is not None
    files = {"new": out.tflite}
    timed: list[tuple[str, str]] = []
    if ref.converted and recipe != REFERENCE:
        files["float"] = ref.tflite
        timed.append(("new", "float"))
    side = accepted is not None and accepted != out.tflite
    if side:
        files["accepted"] = accepted
        timed.append(("new", "accepted"))
    data, spec = runner.data(model), runner.spec(model)
    try:
        got = remote.measure(host, files, data.x_test, outputs=("new",),
                             memory=("new", "accepted") if side else ("new",),
                             latency=tuple(timed) if latency else (), pairs=pairs,
                             batch=spec.static_batch)
    except remote.BoardUnavailable as exc:
        return BoardRun(BoardFigures(host.name, host.ssh, error=str(exc)))
    here = np.asarray(out.measurement.outputs, dtype=np.float64)
    # Rounded as this machine's outputs are kept (6 decimals): equal kernels, equal rows.
    there = np.round(got.outputs["new"].astype(np.float64).reshape(here.shape), 6)
    parity = targets._difference(there, here, targets._output_scale(out.tflite))
    new_pairs, side_pairs = (LatencyPairs(**got.latency[key]) if key in got.latency else None
                             for key in (("new", "float"), ("new", "accepted")))
    peak, why = got.memory["new"]
    figures = BoardFigures(
        host.name, host.ssh, got.machine_class, got.fingerprint.get("name"),
        f"ai-edge-litert {got.versions.get('ai-edge-litert')}, "
        f"Python {got.versions.get('python')}",
        peak_memory=peak, memory_error=why,
        accepted_memory=got.memory["accepted"][0] if side else None,
        latency=LatencyFigures.of(new_pairs), latency_vs_accepted=LatencyFigures.of(side_pairs),
        rows=len(here), output_agreement=parity["agreement"],
        output_max_quanta=parity["max_quanta"], output_max_diff=parity["max_diff"])
    return BoardRun(figures, new_pairs, side_pairs, got.fingerprint, got.versions)
