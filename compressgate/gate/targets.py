"""The targets check: where a file runs besides LiteRT with XNNPACK (kernel parity, and
TFLM where the recipe promises it), judged like the other rules: pure, no files."""

from __future__ import annotations

from typing import Any

from compressgate.gate.baselines import ARENA_FIGURE, UPDATE_MISSING
from compressgate.gate.records import Row, Status, Verdict, fmt
from compressgate.gate.rules import EPSILON, TARGETS_CHECK, _not_converted, _one_sided
from compressgate.pipeline.record import ResultRow, TargetFigures
from compressgate.recipes import DEFAULT_TFLM_QUANTA, Promise
from compressgate.tolerances import Tolerances


def check_targets(row: ResultRow, promise: Promise, accepted: dict[str, Any],
                  tol: Tolerances, hint: str = UPDATE_MISSING) -> Verdict:
    """Where the file runs besides LiteRT with XNNPACK (``compressgate.measure.targets``):
    LiteRT's reference kernels against XNNPACK (``promise.min_kernel_agreement``) and, for
    each runtime in ``row.targets.declared``, TFLM: it loads, its outputs equal the reference
    kernels' (integer outputs: within ``promise.max_tflm_quanta``, default one quantum), its
    arena fits ``promise.max_arena_kib`` and has not grown against ``accepted`` (the
    baseline's metrics) by more than ``tol.arena_pct``."""
    model, recipe = row.model, row.recipe
    if not row.converted:
        return _not_converted(row, TARGETS_CHECK)
    figures = row.targets or TargetFigures()
    if figures.error:
        return Verdict(model, recipe, TARGETS_CHECK, (
            Row("target measurement", None, "measured", "-", Status.FAIL, figures.error),))
    agreement, quanta = figures.kernel_agreement, figures.kernel_max_quanta
    said = f"top-1, XNNPACK vs reference kernels; max difference {fmt(quanta)} quanta"
    limit = promise.min_kernel_agreement
    rows = [Row("kernel agreement", agreement, limit, ">= limit" if limit is not None else "-",
                Status.INFO if limit is None else
                Status.PASS if agreement is not None and agreement >= limit - EPSILON
                else Status.FAIL, said if limit is not None else f"{said} (no promise)")]
    if figures.tflm:
        rows += _tflm_rows(figures, promise, accepted, tol, hint)
    return Verdict(model, recipe, TARGETS_CHECK, tuple(rows))


def _tflm_rows(row: TargetFigures, promise: Promise, accepted: dict[str, Any],
               tol: Tolerances, hint: str) -> list[Row]:
    loads, why = row.tflm_loads, row.tflm_error or ""
    if loads is None:  # tflite-micro missing here: not judged, and said in one line
        return [Row("runs on TFLM", None, True, "-", Status.SKIPPED, why or "not measured")]
    if not loads:
        return [Row("runs on TFLM", False, True, "-", Status.FAIL, why)]
    version = row.tflm_version or "?"
    rows = [Row("runs on TFLM", True, True, "-", Status.PASS, f"tflite-micro {version}")]
    quanta, allowed = row.tflm_max_quanta, promise.max_tflm_quanta
    allowed = DEFAULT_TFLM_QUANTA if allowed is None else allowed
    if quanta is not None:
        rows.append(Row("TFLM vs reference kernels (quanta)", quanta, allowed, "<= limit",
                        Status.PASS if quanta <= allowed else Status.FAIL,
                        f"largest output difference on the first {fmt(row.rows)} "
                        f"test rows; top-1 agreement {fmt(row.tflm_ref_agreement)}"))
    else:
        rows.append(Row("TFLM vs reference kernels", row.tflm_max_diff, None, "-",
                        Status.INFO, "float outputs: largest difference as a fraction of "
                        f"the range; top-1 agreement {fmt(row.tflm_ref_agreement)}"))
    if row.tflm_accuracy is not None:
        rows.append(Row("TFLM accuracy", row.tflm_accuracy, row.litert_rows_accuracy,
                        "-", Status.INFO, f"on the first {fmt(row.rows)} test "
                        "rows, against LiteRT with XNNPACK on the same rows"))
    arena = row.tflm_arena_bytes
    if arena is None:
        return [*rows, Row(ARENA_FIGURE, None, None, "-", Status.FAIL,
                           "TFLM printed no arena allocation total")]
    if promise.max_arena_kib is not None:
        kib = round(arena / 1024, 2)
        rows.append(Row("arena KiB", kib, promise.max_arena_kib, "<= budget",
                        Status.PASS if kib <= promise.max_arena_kib else Status.FAIL,
                        "promise.max_arena_kib"))
    base, tol_text = accepted.get(ARENA_FIGURE), f"+{tol.arena_pct} %"
    if base is None:
        rows.append(Row(ARENA_FIGURE, arena, None, tol_text, Status.SKIPPED,
                        f"not judged: no accepted arena figure; record with: {hint}",
                        missing=True))
    else:
        then = accepted.get("tflm_version")
        note = "accepted" + ("" if then in (None, version)
                             else f" with tflite-micro {then} (now {version})")
        rows.append(_one_sided(ARENA_FIGURE, arena, base, higher_is_better=False,
                               allowed=base * tol.arena_pct / 100, tol_text=tol_text, note=note))
    return rows
