"""The report's plots, drawn with matplotlib's Agg backend into PNG bytes.

Each plot function takes summary rows and returns a ``Plot``: the PNG, or no PNG and a
note saying why (nothing to draw is a fact the page states, not an error).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compressgate.pipeline.record import ResultRow

Rows = list[ResultRow]
FAST, SLOW, EVEN = "#1a7f37", "#cf222e", "#57606a"


@dataclass(frozen=True)
class Plot:
    key: str
    title: str
    png: bytes | None
    caption: str


def pyplot():
    """matplotlib's pyplot on the Agg backend (PNG, no display): every plot of every
    report is drawn through this."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot

    return pyplot


def _render(draw: Callable[[Any], None], size: tuple[float, float]) -> bytes:
    plt = pyplot()
    with plt.rc_context({"font.size": 9}):
        fig = plt.figure(figsize=size, dpi=100, layout="constrained")
        try:
            draw(fig)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", metadata={"Software": None})
        finally:
            plt.close(fig)
    return buffer.getvalue()


def _text(name: str) -> str:
    """A user-given name as literal text (``$`` would start mathtext)."""
    return str(name).replace("$", r"\$")


def _log_axis(axis, suffix: str = "") -> None:
    """Log scale with plain ticks (0.5, 1, 2, 5, ...) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}{suffix}"))
    axis.set_minor_formatter(NullFormatter())


def _clusters(points: list[tuple[float, float]], y_span: float) -> list[list[int]]:
    """Indices of points that would share a label spot (close on the log-x axis and in y),
    so their names are stacked in one label instead of drawn over each other."""
    order = sorted(range(len(points)), key=lambda i: (points[i][1], points[i][0]))
    groups: list[list[int]] = []
    for i in order:
        x, y = points[i]
        for group in groups:
            gx, gy = points[group[0]]
            if abs(math.log10(x / gx)) < 0.02 and abs(y - gy) <= 0.04 * y_span:
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


def spread_labels(ys: list[float], gap: float) -> list[float]:
    """Label heights for points at heights ``ys`` (one column of labels): as close to
    their points as possible, at least ``gap`` apart, in the points' order. Labels that
    would overlap are pushed apart around their mean (so a tight stack stays centred)."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    # Blocks of labels that touch, each placed around the mean of its points.
    blocks: list[list[int]] = []
    for i in order:
        blocks.append([i])
        while len(blocks) > 1:
            prev, last = blocks[-2], blocks[-1]
            if _block_start(prev, ys, gap) + len(prev) * gap <= _block_start(last, ys, gap):
                break
            blocks[-2:] = [prev + last]
    placed = [0.0] * len(ys)
    for block in blocks:
        start = _block_start(block, ys, gap)
        for k, i in enumerate(block):
            placed[i] = start + k * gap
    return placed


def _block_start(block: list[int], ys: list[float], gap: float) -> float:
    mean = sum(ys[i] for i in block) / len(block)
    return mean - gap * (len(block) - 1) / 2


def _by_model(rows: Rows) -> dict[str, Rows]:
    models: dict[str, Rows] = {}
    for row in rows:
        models.setdefault(row.model, []).append(row)
    # The same layout whatever failed: models and recipes by name.
    return {m: sorted(rs, key=lambda r: r.recipe) for m, rs in sorted(models.items())}


def _models_with(rows: Rows, keep: Callable[[ResultRow], bool]) -> dict[str, Rows]:
    """Per model, the rows ``keep`` accepts; models with none are left out."""
    models = {m: [r for r in rs if keep(r)] for m, rs in _by_model(rows).items()}
    return {m: rs for m, rs in models.items() if rs}


def _panels(fig, models: dict[str, Rows]):
    """(axes, model, rows) for one panel per model, two panels a line."""
    cols = min(2, len(models))
    nrows = math.ceil(len(models) / cols)
    for k, (model, rs) in enumerate(models.items(), 1):
        ax = fig.add_subplot(nrows, cols, k)
        ax.set_title(_text(model), fontweight="bold")
        yield ax, model, rs


def _lines(models: dict[str, Rows]) -> int:
    return math.ceil(len(models) / 2)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of (size, accuracy) points no other point beats: no smaller-or-equal size
    with higher-or-equal accuracy, one of them strictly."""
    front = []
    for i, (size, acc) in enumerate(points):
        dominated = any(s <= size and a >= acc and (s < size or a > acc)
                        for j, (s, a) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def accuracy_vs_size(rows: Rows) -> Plot:
    title = "Accuracy vs size"
    models = _models_with(rows, lambda r: r.accuracy is not None and bool(r.size_bytes))
    if not models:
        return Plot("accuracy-size", title, None, "No converted result to plot.")

    def draw(fig) -> None:
        for ax, _, rs in _panels(fig, models):
            points = [(r.size_bytes / 1024, r.accuracy * 100) for r in rs]
            front = set(pareto_front(points))
            for i, (x, y) in enumerate(points):
                on = i in front
                # Front points on top: a hollow marker at the same spot must not hide one.
                ax.scatter(x, y, s=46 if on else 30, zorder=4 if on else 3,
                           color=FAST if on else "white", edgecolors=FAST if on else EVEN)
            ys = [p[1] for p in points]
            span = (max(ys) - min(ys)) or 1.0
            low, high = min(ys), max(ys)
            pad = max(0.5, span * 0.15)
            ax.set_ylim(low - 2.5 * pad, high + pad)
            _label_columns(ax, points, [r.recipe for r in rs], front,
                           gap=0.07 * (span + 3.5 * pad))
            line = sorted(points[i] for i in front)
            ax.plot([p[0] for p in line], [p[1] for p in line], color=FAST, lw=1,
                    drawstyle="steps-post", zorder=2, label="Pareto front")
            ax.set_xscale("log")
            _log_axis(ax.xaxis)
            ax.margins(x=0.25)
            ax.set_xlabel("size (KB, log)")
            ax.set_ylabel("top-1 accuracy (%)")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right", fontsize=7)

    return Plot("accuracy-size", title, _render(draw, (11, 3.6 * _lines(models))),
                "Filled green: on the Pareto front (nothing else is both smaller and at least "
                "as accurate). Results that did not convert are not drawn.")


def _label_columns(ax, points: list[tuple[float, float]], names: list[str], front: set[int],
                   gap: float) -> None:
    """Name every point. Points close on the log-x axis share a column of labels to the
    right of the rightmost of them, spread ``gap`` apart in y and joined to their points
    by thin lines, so four recipes of about one size never print over each other."""
    groups = _clusters(points, 1.0 if gap <= 0 else gap / 0.07)
    anchors = sorted(groups, key=lambda g: points[g[0]][0])
    columns: list[list[list[int]]] = []
    for group in anchors:
        x = points[group[0]][0]
        if columns and math.log10(x / points[columns[-1][0][0]][0]) < 0.15:
            columns[-1].append(group)
        else:
            columns.append([group])
    for column in columns:
        right = max(points[g[0]][0] for g in column)
        heights = spread_labels([points[g[0]][1] for g in column], gap)
        for group, height in zip(column, heights, strict=True):
            x, y = points[group[0]]
            on = any(i in front for i in group)
            ax.annotate("\n".join(_text(names[i]) for i in group), (x, y),
                        xytext=(right * 1.12, height), textcoords="data", fontsize=7,
                        va="center", color="#24292f" if on else EVEN,
                        arrowprops={"arrowstyle": "-", "color": "#d0d7de", "lw": 0.6,
                                    "shrinkA": 0, "shrinkB": 3})


def latency_ratios(rows: Rows) -> Plot:
    title = "Latency ratio per recipe (recipe / float, one thread)"
    models = _models_with(rows, lambda r: r.latency is not None)
    if not models:
        return Plot("latency", title, None, "Latency was not measured in this run.")

    def draw(fig) -> None:
        for ax, _, rs in _panels(fig, models):
            for y, r in enumerate(rs):
                ratio = r.latency.ratio
                low = r.latency.low or ratio
                high = r.latency.high or ratio
                color = SLOW if low > 1 else FAST if high < 1 else EVEN
                spread = [[max(0.0, ratio - low)], [max(0.0, high - ratio)]]
                ax.errorbar(ratio, y, xerr=spread, fmt="o", color=color, capsize=3, ms=5)
                # Right of the interval and of the 1x line: a label never crosses it.
                ax.annotate(f"{ratio:.2f}x ({low:.2f}-{high:.2f})",
                            (max(high, ratio, 1.0), y),
                            textcoords="offset points",
                            xytext=(5, -3), fontsize=7, color=color)
            ax.axvline(1.0, color="#24292f", lw=1, ls="--")
            ax.set_yticks(range(len(rs)), [_text(r.recipe) for r in rs])
            ax.invert_yaxis()
            ax.set_xscale("log")
            _log_axis(ax.xaxis, "x")
            ax.margins(x=0.3)
            ax.set_xlabel("latency ratio (log; < 1 faster than float)")
            ax.grid(axis="x", alpha=0.3)

    return Plot("latency", title, _render(draw, (11, 3.4 * _lines(models))),
                "Median per-pair ratio with its 95 % interval. Red: slower than float "
                "(whole interval above 1); green: faster (whole interval below 1).")


def _class_moves(rows: Rows) -> dict[str, tuple[list[str], list[str], list[list[float]]]]:
    """Per model: (recipes, classes, delta pts) for recipes whose per-class accuracy moved."""
    out = {}
    for model, rs in _by_model(rows).items():
        recipes, deltas, classes = [], [], None
        for r in rs:
            now, ref = r.class_accuracy, r.float_class_accuracy
            if not now or not ref:
                continue
            classes = sorted(ref, key=lambda c: (len(c), c))
            delta = [round((now.get(c, 0.0) - ref[c]) * 100, 2) for c in classes]
            if any(delta):
                recipes.append(r.recipe)
                deltas.append(delta)
        if recipes and classes:
            out[model] = (recipes, classes, deltas)
    return out


def class_accuracy(rows: Rows) -> Plot:
    title = "Accuracy per class, where it moved (points vs float)"
    moves = _class_moves(rows)
    if not moves:
        has_classes = any(r.class_accuracy for r in rows)
        return Plot("class-accuracy", title, None,
                    "No class's accuracy moved against float." if has_classes
                    else "These results carry no per-class accuracy.")

    def draw(fig) -> None:
        heights = [len(recipes) + 1.5 for recipes, _, _ in moves.values()]
        axes = fig.subplots(len(moves), 1, squeeze=False,
                            gridspec_kw={"height_ratios": heights})[:, 0]
        # One scale for all models, at least 5 pts wide: a one-sample move stays pale.
        bound = max(5.0, *(abs(v) for _, _, d in moves.values() for row in d for v in row))
        for ax, (model, (recipes, classes, deltas)) in zip(axes, moves.items(), strict=True):
            image = ax.imshow(deltas, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
            for i, row in enumerate(deltas):
                for j, value in enumerate(row):
                    if value:
                        ax.text(j, i, f"{value:+.1f}", ha="center", va="center", fontsize=7,
                                color="white" if abs(value) > bound * 0.6 else "#24292f")
            ax.set_xticks(range(len(classes)), [_text(c) for c in classes])
            ax.set_yticks(range(len(recipes)), [_text(r) for r in recipes])
            ax.set_xlabel("class")
            ax.set_title(_text(model), fontweight="bold", loc="left")
            fig.colorbar(image, ax=ax, label="pts", shrink=0.9)

    rows_drawn = sum(len(recipes) + 1.5 for recipes, _, _ in moves.values())
    return Plot("class-accuracy", title, _render(draw, (11, 0.9 + 0.42 * rows_drawn)),
                "Each cell: the recipe's accuracy on that class minus the float model's, in "
                "points (red: worse, blue: better). Only recipes where some class moved.")


PLOTS = (accuracy_vs_size, latency_ratios, class_accuracy)


def all_plots(rows: Rows) -> list[Plot]:
    return [plot(rows) for plot in PLOTS]
