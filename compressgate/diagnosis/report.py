"""Write a ``Diagnosis`` for people: ``<dir>/<model>-<recipe>.md``, ``.csv`` and ``.png``.

The CSV holds the full per-tensor table; the Markdown names the worst layers, weight
sparsity per tensor, the keep_float search and anything that could not be diagnosed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from compressgate.backends.analysis import ROUNDING_RMSE_OVER_SCALE, offenders
from compressgate.diagnosis.advice import RANGE_IMBALANCE
from compressgate.diagnosis.collect import Diagnosis, collect
from compressgate.files import write_text_atomic
from compressgate.gate.session import GateSession

_CSV_FIELDS = ("layer", "op", "tensor", "elements", "rmse", "scale", "rmse_over_scale",
               "max_abs_error")


def csv_text(diag: Diagnosis) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_FIELDS)
    for t in diag.tensors:
        writer.writerow((t.layer or "", t.op, t.tensor, t.elements, f"{t.rmse:.6g}",
                         f"{t.scale:.6g}", f"{t.rmse_over_scale:.6g}",
                         f"{t.max_abs_error:.6g}"))
    return out.getvalue()


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def summary_line(diag: Diagnosis, n: int = 3) -> str:
    """The gate's one-line pointer at the worst layers, and the recipe to try."""
    then = f"; {diag.advice.line()}" if diag.advice is not None else ""
    if not diag.layers:
        return "diagnosis: " + ("; ".join(diag.problems) or "no per-layer statistics") + then
    return (f"worst layers by RMSE/scale (QuantizationDebugger; rounding alone "
            f"~{ROUNDING_RMSE_OVER_SCALE:.2f}): {offenders(diag.layers, n)}{then}")


def _recovery(diag: Diagnosis, n: int = 5) -> list[str]:
    """The recipe to try, and the float weights' channel-range imbalance behind it."""
    lines = []
    if diag.advice is not None:
        lines += ["", "## Recovery recipe to try", "", f"{diag.advice.line()}."]
    if diag.imbalances:
        lines += ["", "## Weight channel-range imbalance (float model, most first)", "",
                  f"Widest over narrowest output-channel range (max |w|); above "
                  f"{RANGE_IMBALANCE:.0f}x the narrow channels lose their int8 steps.", "",
                  "| layer or tensor | imbalance |", "|---|---|"]
        lines += [f"| {where.replace('|', '/')} | {ratio:.3g}x |"
                  for where, ratio in diag.imbalances[:n]]
    return lines


def markdown(diag: Diagnosis) -> str:
    lines = [f"# Diagnosis: {diag.model} x {diag.recipe}", ""]
    row = diag.row
    if row is not None and row.accuracy is not None:
        nan = float("nan")
        lines.append(f"- accuracy {row.accuracy:.4f} vs float "
                     f"{_or(row.float_accuracy, nan):.4f} (drop "
                     f"{_or(row.accuracy_drop_pts, nan):.2f} pts), {row.size_bytes} bytes")
        if row.kept_float is not None:
            lines.append(f"- layers kept float: {', '.join(row.kept_float) or 'none'}")
    if row is not None and row.coverage is not None:
        lines.append(f"- delegate coverage: {row.coverage.describe()}")
    if diag.time_goes:
        lines.append(f"- where the time goes: {diag.time_goes}")
    if diag.layers:
        worst = diag.layers[0]
        lines.append(f"- largest error: {worst.name} ({'/'.join(worst.ops)}), RMSE/scale "
                     f"{worst.rmse_over_scale:.3g}")
    lines += [f"- problem: {p}" for p in diag.problems]
    lines += _recovery(diag)
    if diag.layers:
        lines += ["", "## Per-layer quantization error (worst first)", "",
                  f"RMSE / scale is the error in quantization steps; rounding alone gives "
                  f"~{ROUNDING_RMSE_OVER_SCALE:.2f}. Full per-tensor table in the CSV.", "",
                  "| layer | ops | RMSE/scale | RMSE | max abs error |", "|---|---|---|---|---|"]
        lines += [f"| {e.name if e.mapped else '(' + e.name + ')'} | {' '.join(e.ops)} | "
                  f"{e.rmse_over_scale:.3g} | {e.rmse:.3g} | {e.max_abs_error:.3g} |"
                  for e in diag.layers]
    if diag.search is not None:
        s = diag.search
        lines += ["", "## keep_float auto search (train + calibration splits)", "",
                  f"Budget: drop < {s.budget_pts} pts against float accuracy "
                  f"{s.float_accuracy:.4f}; {'fits' if s.fits else 'does not fit'}; "
                  f"chosen: {', '.join(s.chosen.kept_float) or 'none kept float'}.", "",
                  "| kept float | accuracy | drop (pts) | bytes |", "|---|---|---|---|"]
        lines += [f"| {', '.join(st.kept_float) or '-'} | {st.accuracy:.4f} | "
                  f"{st.drop_pts:.2f} | {st.size_bytes} |" for st in s.steps]
    if diag.sparsity:
        lines += ["", "## Weight sparsity per tensor (.tflite)", "",
                  "| tensor | elements | zeros | sparsity |", "|---|---|---|---|"]
        lines += [f"| {name.replace('|', '/')} | {n} | {z} | {z / n if n else 0:.3f} |"
                  for name, n, z in diag.sparsity]
    return "\n".join(lines) + "\n"


def _plot(diag: Diagnosis, path: Path) -> None:
    from compressgate.report.plots import pyplot

    plt = pyplot()

    layers = diag.layers
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(layers) + 1.2))
    try:
        ax.barh([e.name for e in layers][::-1], [e.rmse_over_scale for e in layers][::-1])
        ax.axvline(ROUNDING_RMSE_OVER_SCALE, color="grey", linestyle="--", label="rounding")
        ax.set_xscale("log")
        ax.set_xlabel("RMSE / scale (quantization steps)")
        ax.set_title(f"{diag.model} x {diag.recipe}")
        ax.legend(loc="lower right")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)
    finally:
        plt.close(fig)


def write(diag: Diagnosis, directory: Path) -> list[Path]:
    """Write the report files; the plot only when there are per-layer figures."""
    stem = directory / f"{diag.model}-{diag.recipe}"
    paths = [stem.with_suffix(".md"), stem.with_suffix(".csv")]
    write_text_atomic(paths[0], markdown(diag))
    write_text_atomic(paths[1], csv_text(diag))
    if diag.layers:
        paths.append(stem.with_suffix(".png"))
        _plot(diag, paths[2])
    return paths


def diagnose_note(session: GateSession, model: str, recipe: str) -> str:
    """Diagnose a failed accuracy check: one line naming the worst layers, and the full
    report under ``<reports>/diagnosis/`` when the session writes reports."""
    try:
        diag = collect(session.runner, model, recipe)
        line = summary_line(diag)
        if session.settings.reports is not None:
            paths = write(diag, session.settings.reports / "diagnosis")
            line += f" (report: {paths[0]})"
        return line
    except Exception as exc:  # a diagnosis must never hide the verdict it explains
        return f"diagnosis failed: {type(exc).__name__}: {str(exc)[:200]}"
