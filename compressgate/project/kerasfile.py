"""What a Keras model file says about itself, read without TensorFlow: the Keras version
that saved it, its architecture config, and the first layer a tf_keras twin cannot rebuild.

Both ``.keras`` archives (``metadata.json``, ``config.json``) and ``.h5`` files (the
``keras_version`` and ``model_config`` attributes) are read; anything unreadable gives
None and is left to the loader, which names the problem.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

# A serialized Keras 3 builtin layer names this module; ``keras.src.ops.*`` are
# ``keras.ops`` calls in a Functional graph, which tf_keras has no layer for.
BUILTIN_LAYERS = "keras.layers"
MODELS = ("Functional", "Sequential", "Model")


def archive_json(path: Path, member: str) -> dict | None:
    """A JSON member of a ``.keras`` archive; None when absent or unreadable."""
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(member))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return None


def _h5_attrs(path: Path) -> dict[str, str]:
    """The ``keras_version`` and ``model_config`` attributes of an ``.h5`` file."""
    if path.suffix.lower() not in (".h5", ".hdf5") or not path.is_file():
        return {}
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return {k: (v.decode() if isinstance(v, bytes) else str(v))
                    for k, v in f.attrs.items() if k in ("keras_version", "model_config")}
    except (ImportError, OSError):
        return {}


def keras_version(path: Path) -> str:
    """The Keras version that saved ``path`` ("" when it does not say)."""
    if path.suffix == ".keras":
        return str((archive_json(path, "metadata.json") or {}).get("keras_version", ""))
    return _h5_attrs(path).get("keras_version", "")


def keras3_version(path: Path) -> str | None:
    """The Keras version that saved ``path``, when it is 3 or newer."""
    major = keras_version(path).split(".")[0]
    return keras_version(path) if major.isdigit() and int(major) >= 3 else None


def model_config(path: Path) -> dict | None:
    """The serialized model (``class_name``, ``config``) a ``.keras`` or ``.h5`` holds."""
    if path.suffix == ".keras":
        return archive_json(path, "config.json")
    text = _h5_attrs(path).get("model_config")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def custom_classes(path: Path) -> list[str]:
    """Classes a ``.keras`` archive's config names from outside Keras (custom layers)."""
    config = archive_json(path, "config.json")
    if config is None:
        return []
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            module = node.get("module")
            if isinstance(module, str) and "class_name" in node \
                    and module.split(".")[0] not in ("keras", "tf_keras", "builtins"):
                found.append(node.get("registered_name") or node["class_name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return list(dict.fromkeys(found))


def twin_blocker(config: dict, has_twin: Callable[[str], bool]) -> str | None:
    """The first layer of a Keras 3 model ``config`` that no tf_keras layer class can
    rebuild, as "layer 'name' (what it is) has no tf_keras twin"; None when every layer
    has one.

    ``has_twin(class_name)``: whether tf_keras has a builtin layer of that name.
    """
    if config.get("class_name") not in MODELS:
        return (f"model class {config.get('class_name')!r} has no tf_keras twin (a "
                "subclassed keras.Model: no layer graph to rebuild)")
    for node in _layers_in_order(config):
        # An .h5 file's config has no module (Keras 3 saves it in the legacy format).
        module, name = node.get("module"), node.get("class_name", "?")
        label = node.get("name") or (node.get("config") or {}).get("name") or name
        if str(module).startswith("keras.src.ops"):
            return f"layer {label!r} (a keras.ops call, {name}) has no tf_keras twin"
        if module not in (None, BUILTIN_LAYERS) or (module and node.get("registered_name")):
            return (f"layer {label!r} (custom class {node.get('registered_name') or name}) "
                    "has no tf_keras twin")
        if not has_twin(name):
            return f"layer {label!r} ({name}, not a tf_keras layer) has no tf_keras twin"
    return None


def _layers_in_order(model: dict) -> Iterator[dict]:
    """The serialized layers (and ``keras.ops`` calls) of a serialized model, in config
    order: a nested model's layers in its place, a wrapper before the layer it wraps."""
    for entry in (model.get("config") or {}).get("layers", []):
        if entry.get("class_name") in MODELS:
            yield from _layers_in_order(entry)
            continue
        yield entry
        for key in ("layer", "backward_layer"):  # Bidirectional, TimeDistributed
            inner = (entry.get("config") or {}).get(key)
            if isinstance(inner, dict) and "class_name" in inner:
                yield from _layers_in_order({"config": {"layers": [inner]}})


@functools.cache
def tf_keras_layer_names() -> frozenset[str]:
    """The public layer classes of the installed tf_keras, read from its ``layers``
    API file without importing it (importing it loads TensorFlow)."""
    spec = importlib.util.find_spec("tf_keras")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    names: set[str] = set()
    for root in spec.submodule_search_locations:
        api = Path(root) / "layers" / "__init__.py"
        if api.is_file():
            for node in ast.walk(ast.parse(api.read_text())):
                if isinstance(node, ast.ImportFrom):
                    names.update(alias.asname or alias.name for alias in node.names)
    return frozenset(names)
