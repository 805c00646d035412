"""Where a model, a dataset or a metric comes from: a path, or ``module:function``.

A ``module:function`` reference is imported with the config file's directory on
``sys.path`` (so a project's own modules work without installing them) and called with
no arguments; a path is resolved against that directory.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressgate.errors import UserInputError

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_reference(text: str) -> bool:
    return bool(_REFERENCE.match(text))


@dataclass(frozen=True)
class Source:
    """``text`` as written in the config, and the directory it is relative to."""

    text: str
    root: Path

    @property
    def is_function(self) -> bool:
        return is_reference(self.text)

    @property
    def path(self) -> Path:
        if self.is_function:
            raise UserInputError(f"{self.text}: a module:function reference, not a path")
        return self.root / self.text

    def resolve(self) -> Callable[..., Any]:
        """The function named by ``module:function``, imported from ``root``."""
        module_name, _, attr = self.text.partition(":")
        root = str(self.root.resolve())
        if root not in sys.path:
            sys.path.insert(0, root)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # an import runs arbitrary user code
            raise UserInputError(
                f"{self.text}: cannot import module {module_name!r} from {root} "
                f"({type(exc).__name__}: {exc})") from None
        function = getattr(module, attr, None)
        if not callable(function):
            raise UserInputError(f"{self.text}: module {module_name!r} has no function {attr!r}")
        return function

    def call(self) -> Any:
        function = self.resolve()
        try:
            return function()
        except UserInputError:
            raise
        except Exception as exc:  # user code
            raise UserInputError(
                f"{self.text}: raised {type(exc).__name__}: {str(exc)[:200]}") from None

    def __str__(self) -> str:
        return self.text if self.is_function else str(self.path)
