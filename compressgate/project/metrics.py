"""The figure of merit a model is gated on: top-1 accuracy by default, or any metric.

A metric turns (labels, model outputs) into one float and says which direction is
better. Its ``max_loss`` is how much worse than the float model a recipe may be; its
``tolerance`` how much worse than the baseline. Accuracy is shown in points (x100).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressgate.errors import UserInputError
from compressgate.project.sources import Source, is_reference


def _accuracy(y_true: np.ndarray, outputs: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs.reshape(len(outputs), -1), axis=-1) == y_true))


def _mae(y_true: np.ndarray, outputs: np.ndarray) -> float:
    return float(np.mean(np.abs(outputs.reshape(y_true.shape) - y_true)))


def _mse(y_true: np.ndarray, outputs: np.ndarray) -> float:
    return float(np.mean((outputs.reshape(y_true.shape) - y_true) ** 2))


BUILTIN: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]] = {
    "accuracy": (_accuracy, True),
    "mae": (_mae, False),
    "mse": (_mse, False),
}


@dataclass(frozen=True)
class Metric:
    """How a model is scored; ``function`` is a builtin name or ``module:function``."""

    function: str = "accuracy"
    higher_is_better: bool = True
    # None for accuracy: the recipe's promise (max_drop_pts) and Tolerances.accuracy_pts.
    max_loss: float | None = None
    tolerance: float | None = None
    root: Path = Path(".")

    @property
    def name(self) -> str:
        return self.function.rpartition(":")[2]

    @property
    def is_accuracy(self) -> bool:
        return self.function == "accuracy"

    @classmethod
    def build(cls, function: str, *, higher_is_better: bool | None, max_loss: float | None,
              tolerance: float | None, root: Path, where: str) -> Metric:
        """Validate a metric's settings; ``where`` names the config entry in errors."""
        if function in BUILTIN:
            builtin_direction = BUILTIN[function][1]
            if higher_is_better is not None and higher_is_better != builtin_direction:
                raise UserInputError(
                    f"{where}: metric {function!r} is {'higher' if builtin_direction else 'lower'}"
                    " is better; remove higher_is_better")
            higher_is_better = builtin_direction
        elif not is_reference(function):
            raise UserInputError(
                f"{where}: metric {function!r} is neither a builtin "
                f"({', '.join(BUILTIN)}) nor module:function")
        elif higher_is_better is None:
            raise UserInputError(f"{where}: custom metric {function!r} needs higher_is_better")
        if function != "accuracy" and max_loss is None:
            raise UserInputError(
                f"{where}: metric {function!r} needs max_loss (how much worse than the float "
                "model a recipe may be, in the metric's units)")
        if tolerance is None and max_loss is not None:
            tolerance = max_loss / 4
        return cls(function, higher_is_better, max_loss, tolerance, root)

    def score(self, y_true: np.ndarray, outputs: np.ndarray) -> float:
        if self.function in BUILTIN:
            return BUILTIN[self.function][0](y_true, outputs)
        fn = Source(self.function, self.root).resolve()
        try:
            return float(fn(y_true, outputs))
        except Exception as exc:  # user code
            raise UserInputError(
                f"metric {self.function}: raised {type(exc).__name__}: {str(exc)[:200]}"
            ) from None

    def loss(self, reference: float, candidate: float) -> float:
        """How much worse ``candidate`` is than ``reference`` (accuracy: in points)."""
        worse = reference - candidate if self.higher_is_better else candidate - reference
        return worse * 100 if self.is_accuracy else worse
