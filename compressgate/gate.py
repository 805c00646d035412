"""Verdicts: pure functions from measured figures (+ promise, + baseline) to pass/fail.

Nothing here imports TensorFlow or touches files, so every rule is unit-testable on
hand-made rows. Comparisons against a baseline are one-sided: getting worse beyond the
tolerance is a regression; getting better beyond it passes but marks the baseline stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from compressgate.recipes import Promise
from compressgate.stats import ALPHA, LatencyPairs, ratio_below, ratio_exceeds

Status = Literal["pass", "fail", "regression", "improved", "skipped"]
CHECKS = ("conversion", "accuracy", "size", "baseline", "latency")
BASELINE_METRICS = ("accuracy", "size_bytes", "gzip_bytes", "sparsity")
# Peak resident bytes of load + allocate + invoke (``compressgate.memory``).
MEMORY_METRIC = "peak_memory_bytes"
# The float conversion must predict what Keras predicts (float rounding may flip a tie).
KERAS_AGREEMENT = 0.99


@dataclass(frozen=True)
class Tolerances:
    """How far a figure may move against its baseline before it counts."""

    accuracy_pts: float = 0.5
    size_pct: float = 1.0
    gzip_pct: float = 1.0
    sparsity: float = 0.01
    latency_pct: float = 15.0
    alpha: float = ALPHA
    # Peak memory may grow by memory_pct of the baseline plus memory_kib: repeated
    # fresh-process runs of one model differ by up to ~100 KiB (64 KiB steps), up to 3 %
    # of the smallest fixtures.
    memory_pct: float = 5.0
    memory_kib: float = 128.0

    def memory_allowed(self, base: float) -> float:
        """Bytes by which peak memory may exceed a baseline of ``base`` bytes."""
        return base * self.memory_pct / 100 + self.memory_kib * 1024

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "tolerances") -> Tolerances:
        from compressgate.recipes import _from_dict

        return _from_dict(cls, data, where)


@dataclass(frozen=True)
class Row:
    """One metric of a verdict: what was measured, against what, and the outcome."""

    metric: str
    measured: Any
    expected: Any
    tolerance: str
    status: Status
    note: str = ""


@dataclass(frozen=True)
class Verdict:
    model: str
    recipe: str
    check: str
    rows: tuple[Row, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> bool:
        return any(r.status in ("fail", "regression") for r in self.rows)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.status in ("fail", "regression")]

    @property
    def stale(self) -> list[Row]:
        return [r for r in self.rows if r.status == "improved"]

    def table(self) -> str:
        """A small fixed-width table: metric, measured, expected, tolerance, verdict."""
        header = ("metric", "measured", "baseline/limit", "tolerance", "verdict")
        lines = [header] + [(r.metric, _fmt(r.measured), _fmt(r.expected), r.tolerance,
                             r.status + (f" ({r.note})" if r.note else "")) for r in self.rows]
        widths = [max(len(str(line[i])) for line in lines) for i in range(4)]
        out = [f"{self.model} x {self.recipe}: {self.check}"]
        for line in lines:
            cells = [str(c).ljust(w) for c, w in zip(line[:4], widths, strict=True)]
            out.append("  " + "  ".join([*cells, str(line[4])]))
        out.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def check_conversion(row: dict[str, Any], promise: Promise) -> Verdict:
    rows = [Row("converted", row["converted"], True, "-",
                "pass" if row["converted"] else "fail", row.get("error") or "")]
    if row["converted"]:
        if promise.io_dtype:
            for side in ("input_dtype", "output_dtype"):
                rows.append(Row(side, row[side], promise.io_dtype, "-",
                                "pass" if row[side] == promise.io_dtype else "fail"))
        if promise.integer_only:
            floats = row.get("float_ops") or []
            rows.append(Row("float ops", " ".join(floats) or "none", "none", "-",
                            "fail" if floats else "pass"))
        if promise.min_runtime:
            rows.append(_runtime_row(row, promise.min_runtime))
    return Verdict(row["model"], row["recipe"], "conversion", tuple(rows))


def _runtime_row(row: dict[str, Any], declared: str) -> Row:
    """The declared oldest runtime against the op versions in the flatbuffer; an op the
    runtime table does not know cannot be vouched for, so it fails too."""
    from compressgate.runtime_versions import judge, requirement

    verdict = judge(requirement(tuple(op) for op in row.get("op_versions") or ()), declared)
    return Row("min runtime", verdict.measured, f"<= {declared}", "-",
               "pass" if verdict.ok else "fail", verdict.note)


def check_accuracy(row: dict[str, Any], promise: Promise) -> Verdict:
    """The recipe's loss against the float model: accuracy in points (the promise's
    ``max_drop_pts``), or a custom metric in its own units (the metric's ``max_loss``)."""
    if row.get("metric", "accuracy") != "accuracy":
        return _check_metric(row)
    drop = row.get("accuracy_drop_pts")
    if drop is None:
        return _not_converted(row, "accuracy")
    ok = drop < promise.max_drop_pts
    rows = [Row("accuracy drop (pts)", drop, promise.max_drop_pts, "< limit",
                "pass" if ok else "fail",
                f"{row['accuracy']:.4f} vs float {row['float_accuracy']:.4f}")]
    agreement = row.get("keras_agreement")
    if agreement is not None:  # the float reference: is the conversion faithful?
        rows.append(Row("top-1 agreement with Keras", agreement, KERAS_AGREEMENT, ">= limit",
                        "pass" if agreement >= KERAS_AGREEMENT else "fail"))
    return Verdict(row["model"], row["recipe"], "accuracy", tuple(rows))


def _check_metric(row: dict[str, Any]) -> Verdict:
    loss = row.get("metric_loss")
    if loss is None:
        return _not_converted(row, "accuracy")
    better = "higher" if row["higher_is_better"] else "lower"
    return Verdict(row["model"], row["recipe"], "accuracy", (
        Row(f"{row['metric']} loss", loss, row["max_loss"], "< limit",
            "pass" if loss < row["max_loss"] else "fail",
            f"{row['score']:.6g} vs float {row['float_score']:.6g}, {better} is better"),))


def baseline_keys(row: dict[str, Any]) -> tuple[str, ...]:
    """The figures a baseline stores for ``row``'s model (its metric under its name)."""
    metric = row.get("metric", "accuracy")
    return (metric, *BASELINE_METRICS[1:])


def baseline_figures(row: dict[str, Any]) -> dict[str, Any]:
    """``row``'s figures under their baseline names (a custom metric's score as its name)."""
    metric = row.get("metric", "accuracy")
    return {k: row["score"] if k == metric and metric != "accuracy" else row[k]
            for k in baseline_keys(row)}


def check_size(row: dict[str, Any], promise: Promise) -> Verdict:
    if row.get("size_ratio") is None:
        return _not_converted(row, "size")
    rows = []
    for metric, limit in (("size_ratio", promise.min_size_ratio),
                          ("gzip_ratio", promise.min_gzip_ratio)):
        if limit is not None:
            rows.append(Row(metric, row[metric], limit, ">= limit",
                            "pass" if row[metric] >= limit else "fail"))
    if not rows:
        rows.append(Row("size_ratio", row["size_ratio"], None, "no promise", "skipped"))
    return Verdict(row["model"], row["recipe"], "size", tuple(rows))


def _not_converted(row: dict[str, Any], check: str) -> Verdict:
    return Verdict(row["model"], row["recipe"], check, (
        Row("converted", False, True, "-", "fail", row.get("error") or "no result"),))


def _one_sided(metric: str, measured: float, base: float, *, higher_is_better: bool,
               allowed: float, tol_text: str) -> Row:
    worse = base - measured if higher_is_better else measured - base
    if worse > allowed:
        status: Status = "regression"
    elif -worse > allowed:
        status = "improved"
    else:
        status = "pass"
    return Row(metric, measured, base, tol_text, status)


def check_baseline(row: dict[str, Any], metrics: dict[str, Any], tol: Tolerances,
                   hint: str = "--compressgate-update=missing") -> Verdict:
    """Against a baseline's ``metrics``: accuracy (or the model's metric) not worse, size,
    gzip size and peak memory not larger, sparsity not lower. ``hint`` says how to record a
    missing figure."""
    model, recipe = row["model"], row["recipe"]
    if not metrics.get("converted", True):
        status: Status = "improved" if row["converted"] else "pass"
        return Verdict(model, recipe, "baseline", (
            Row("converted", row["converted"], False, "-", status,
                metrics.get("error") or ""),))
    if not row["converted"]:
        return Verdict(model, recipe, "baseline", (
            Row("converted", False, True, "-", "regression", row.get("error") or ""),))
    if row.get("metric", "accuracy") == "accuracy":
        quality = _one_sided("accuracy", row["accuracy"], metrics["accuracy"],
                             higher_is_better=True, allowed=tol.accuracy_pts / 100,
                             tol_text=f"-{tol.accuracy_pts} pts")
    else:
        sign = "-" if row["higher_is_better"] else "+"
        quality = _one_sided(row["metric"], row["score"], metrics[row["metric"]],
                             higher_is_better=row["higher_is_better"],
                             allowed=row["metric_tolerance"],
                             tol_text=f"{sign}{row['metric_tolerance']:.4g}")
    rows = [
        quality,
        _one_sided("size_bytes", row["size_bytes"], metrics["size_bytes"],
                   higher_is_better=False, allowed=metrics["size_bytes"] * tol.size_pct / 100,
                   tol_text=f"+{tol.size_pct} %"),
        _one_sided("gzip_bytes", row["gzip_bytes"], metrics["gzip_bytes"],
                   higher_is_better=False, allowed=metrics["gzip_bytes"] * tol.gzip_pct / 100,
                   tol_text=f"+{tol.gzip_pct} %"),
        _one_sided("sparsity", row["sparsity"], metrics["sparsity"], higher_is_better=True,
                   allowed=tol.sparsity, tol_text=f"-{tol.sparsity}"),
    ]
    if MEMORY_METRIC in row or MEMORY_METRIC in metrics:
        rows.append(_memory_row(row, metrics.get(MEMORY_METRIC), tol, hint))
    return Verdict(model, recipe, "baseline", tuple(rows))


def _memory_row(row: dict[str, Any], base: float | None, tol: Tolerances, hint: str) -> Row:
    measured, tol_text = row.get(MEMORY_METRIC), f"+{tol.memory_pct} % +{tol.memory_kib:g} KiB"
    if measured is None:
        return Row(MEMORY_METRIC, None, base, tol_text, "fail",
                   row.get("memory_error") or "not measured")
    if base is None:  # a baseline from before compressgate measured memory
        return Row(MEMORY_METRIC, measured, None, tol_text, "fail",
                   f"no baseline for {MEMORY_METRIC}; create it with: {hint}")
    return _one_sided(MEMORY_METRIC, measured, base, higher_is_better=False,
                      allowed=tol.memory_allowed(base), tol_text=tol_text)


def check_latency(model: str, recipe: str, pairs: LatencyPairs | None, promise: Promise,
                  baseline_ratio: float | None, tol: Tolerances, *,
                  same_machine: bool = True,
                  baseline_interval: tuple[float, float] | None = None) -> Verdict:
    """Latency ratio recipe/float from this run's interleaved pairs.

    A regression needs both: the ratio worse than the baseline's by more than the
    tolerance, and the per-pair difference significant (Wilcoxon, p < alpha). The
    tolerance counts from the edge of the baseline's recorded 95 % interval, so a
    baseline that was noisy when recorded is not held to a tighter bound than it met.
    """
    if pairs is None:
        return Verdict(model, recipe, "latency", (
            Row("converted", False, True, "-", "fail", "no model to time"),))
    ratio = pairs.ratio
    low, high = pairs.ratio_interval()
    interval = f"95% CI {low:.3f}-{high:.3f}, n={len(pairs.reference_ms)}"
    rows, notes = [], [f"float {pairs.reference_median_ms:.4f} ms, "
                       f"{recipe} {pairs.candidate_median_ms:.4f} ms per inference"]
    if promise.faster_than_float:
        faster, p = ratio_below(pairs, 1.0, tol.alpha)
        rows.append(Row("faster than float", ratio, 1.0, f"p < {tol.alpha}",
                        "pass" if faster else "fail", f"p={p:.2g}, {interval}"))
    if baseline_ratio is None:
        rows.append(Row("latency_ratio", ratio, None, "-", "skipped", "no baseline ratio"))
    elif not same_machine:
        rows.append(Row("latency_ratio", ratio, baseline_ratio, "-", "skipped",
                        "baseline recorded on another CPU"))
    else:
        factor = 1 + tol.latency_pct / 100
        low, high = baseline_interval or (baseline_ratio, baseline_ratio)
        upper, lower = max(high, baseline_ratio) * factor, min(low, baseline_ratio) / factor
        worse, p_worse = ratio_exceeds(pairs, upper, tol.alpha)
        better, p_better = ratio_below(pairs, lower, tol.alpha)
        status: Status = "regression" if worse else "improved" if better else "pass"
        p = p_worse if status != "improved" else p_better
        rows.append(Row("latency_ratio", ratio, baseline_ratio,
                        f"<= {upper:.3g}, p < {tol.alpha}", status, f"p={p:.2g}, {interval}"))
    return Verdict(model, recipe, "latency", tuple(rows), tuple(notes))


def absolute_failures(row: dict[str, Any], promise: Promise) -> list[str]:
    """Why a result must not become a baseline (conversion or the accuracy limit)."""
    reasons = []
    for verdict in (check_conversion(row, promise), check_accuracy(row, promise)):
        reasons += [f"{verdict.check}: {r.metric} {_fmt(r.measured)}" for r in verdict.regressions]
    return reasons
