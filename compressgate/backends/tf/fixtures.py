"""Build the bundled fixture models and their data, deterministically.

``compressgate fixtures build`` regenerates ``fixtures/``: data from scikit-learn's bundled
datasets or generated from a seed, float Keras models trained with seeds and op
determinism, and ``manifest.json`` with sha256s, parameter counts and float accuracy.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressgate.backends.tf.env import deterministic, import_keras, versions, with_batch
from compressgate.measure.machine import machine_class, this_machine
from compressgate.project.models import Dataset, file_sha256

BUILD_COMMAND = "compressgate fixtures build --out fixtures"


def _split(x: np.ndarray, y: np.ndarray, calib: int, test: int, seed: int) -> Dataset:
    """Stratified, disjoint train / calib / test splits."""
    from sklearn.model_selection import train_test_split

    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test, stratify=y, random_state=seed)
    x_train, x_calib, y_train, y_calib = train_test_split(
        x_rest, y_rest, test_size=calib, stratify=y_rest, random_state=seed)
    as_ids = lambda a: a.astype(np.int64)  # noqa: E731
    return Dataset(x_train.astype(np.float32), as_ids(y_train), x_calib.astype(np.float32),
                   as_ids(y_calib), x_test.astype(np.float32), as_ids(y_test))


def digits_data() -> Dataset:
    """scikit-learn's 8x8 digits scaled to [0, 1]. The models upsample them to 32x32
    themselves (a RESIZE_BILINEAR op), which keeps the stored data small."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _split(digits.images[..., None] / 16.0, digits.target, calib=200, test=400, seed=0)


def waveform_data(n: int = 3000, length: int = 64, seed: int = 0) -> Dataset:
    """Noisy sine / square / triangle / sawtooth waves of random frequency, phase,
    amplitude and offset: a sequence task that needs the whole window to classify."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    labels = rng.integers(0, 4, size=n)
    freq = rng.uniform(1.5, 4.0, size=(n, 1))
    phase = rng.uniform(0, 1, size=(n, 1))
    cycle = (freq * t + phase) % 1.0
    waves = np.stack([
        np.sin(2 * np.pi * cycle),
        np.where(cycle < 0.5, 1.0, -1.0),
        4 * np.abs(cycle - 0.5) - 1.0,
        2 * cycle - 1.0,
    ])[labels, np.arange(n)]
    amplitude = rng.uniform(0.5, 1.5, size=(n, 1))
    offset = rng.uniform(-0.5, 0.5, size=(n, 1))
    x = amplitude * waves + offset + rng.normal(0, 0.3, size=(n, length))
    return _split(x[..., None], labels, calib=200, test=800, seed=seed)


def breast_cancer_data() -> Dataset:
    """scikit-learn's breast cancer features, standardized with training statistics."""
    from sklearn.datasets import load_breast_cancer

    bc = load_breast_cancer()
    data = _split(bc.data, bc.target, calib=60, test=171, seed=0)
    mean, std = data.x_train.mean(axis=0), data.x_train.std(axis=0) + 1e-6
    scale = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return Dataset(scale(data.x_train), data.y_train, scale(data.x_calib), data.y_calib,
                   scale(data.x_test), data.y_test)


def _digits_cnn():
    layers = import_keras().layers
    return import_keras().Sequential([
        layers.Input((8, 8, 1)),
        layers.UpSampling2D(4, interpolation="bilinear"),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ], name="digits_cnn")


def _digits_dscnn():
    keras = import_keras()
    layers = keras.layers
    inputs = layers.Input((8, 8, 1))
    x = layers.UpSampling2D(4, interpolation="bilinear")(inputs)
    x = layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for filters, stride in ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (256, 1)):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="digits_dscnn")


_SEQ_NO_CHANNELS = ("channel pruning removes Conv/Dense channels: the LSTM holds the "
                    "hidden units and the one Dense layer is the output (refused: no "
                    "layer can lose channels)")


def _seq_rnn():
    layers = import_keras().layers
    return import_keras().Sequential([
        layers.Input((64, 1), batch_size=1),
        layers.LSTM(48),
        layers.Dense(4, activation="softmax"),
    ], name="seq_rnn")


def _tabular_mlp():
    layers = import_keras().layers
    return import_keras().Sequential([
        layers.Input((30,)),
        layers.Dense(64, activation="relu"),
        layers.Dense(32, activation="relu"),
        layers.Dense(2, activation="softmax"),
    ], name="tabular_mlp")


@dataclass(frozen=True)
class FixtureSpec:
    name: str
    data_file: str
    data: Callable[[], Dataset]
    build: Callable[[], Any]
    epochs: int
    learning_rate: float = 1e-3
    static_batch: int | None = None
    # Per-recipe overrides of the gate's promises, each with the measured reason.
    recipe_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


_PER_CHANNEL = ("per-channel scales and 64-bit zero points for every output channel of "
                "every weight, bias and activation tensor, plus int32 biases")

# Measured on seq_rnn (10K parameters, nearly all in the LSTM): 50 -> 80 % over 6 epochs
# dropped 33 points, over 12 epochs 5 points; 30 -> 70 % over 10 epochs held accuracy.
SEQ_INT8_NONDETERMINISTIC = (
    "two fresh conversions in separate clean environments gave two different files (s"
    "ha256 66d5dbb3... and b8c0fadc..., 14880 bytes each, gzip 10976 vs 10981 bytes):"
    " the int8 LSTM conversion is not byte-reproducible; size, gzip size and accuracy"
    " stay gated within their tolerances"
)
_SEQ_PRUNE = {"prune": {"initial_sparsity": 0.3, "final_sparsity": 0.7},
              "finetune": {"epochs": 10, "learning_rate": 1e-3}}
_SEQ_PRUNE_WHY = ("80 % sparsity on a 10K-parameter LSTM measured a 33-point drop; "
                  "70 % over 10 epochs measured none")

_TFLM_WHY = {
    "seq_rnn": ("TFLM's int8 UNIDIRECTIONAL_SEQUENCE_LSTM is its own integer port: against "
                "LiteRT's reference kernels measured up to 8 (ptq_int8) and 5 (prune_int8) "
                "quanta of the softmax output on the first 100 test rows, top-1 unchanged "
                "(all 800 rows: 9 and 11 quanta, 99.75 % agreement)"),
    "tabular_mlp": ("TFLM's outputs of this FULLY_CONNECTED + SOFTMAX model differ from "
                    "LiteRT's reference kernels by 1 quantum (1/256) on some rows, top-1 "
                    "unchanged (measured on all 171 test rows); the digits CNNs are "
                    "bit-exact"),
}


def _tflm(model: str, quanta: int, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``overrides`` with a TFLM output tolerance (in quanta) on the full-integer
    recipes, and its measured reason appended to theirs."""
    out = dict(overrides)
    for name in ("ptq_int8", "qat_int8", "prune_int8"):
        if "unsupported" in out.get(name, {}):
            continue
        entry = dict(out.get(name, {}))
        entry["promise"] = {**entry.get("promise", {}), "max_tflm_quanta": quanta}
        entry["why"] = "; ".join(filter(None, (entry.get("why"), _TFLM_WHY[model])))
        out[name] = entry
    return out

_LQ_RECIPES = ("lq_int4_weight_only", "lq_int8_dynamic", "lq_int8_static")
_LQ_LSTM_WHY = ("litert-quantizer 0.11 leaves UNIDIRECTIONAL_SEQUENCE_LSTM float, 98 % of "
                "the weights: measured 1.00-1.01x")

FIXTURES: tuple[FixtureSpec, ...] = (
    FixtureSpec("digits_cnn", "digits.npz", digits_data, _digits_cnn, epochs=15),
    FixtureSpec(
        "digits_dscnn", "digits.npz", digits_data, _digits_dscnn, epochs=40,
        recipe_overrides={
            **{name: {"promise": {"min_size_ratio": 2.9},
                      "why": f"int8 ratio measured 3.07x: {_PER_CHANNEL} are ~20 % of the "
                             "file when most weights sit in 1x1 convs of 128-256 channels"}
               for name in ("ptq_int8", "qat_int8", "prune_int8")},
            "prune_int8": {"promise": {"min_size_ratio": 2.9, "min_gzip_ratio": 7.0},
                           "why": "measured 3.07x raw and 7.6x gzip: tfmot does not prune "
                                  "DepthwiseConv2D, and the first/last layers stay dense"},
            "ptq_int16x8": {"promise": {"min_size_ratio": 2.6},
                            "why": f"measured 2.81x: {_PER_CHANNEL}"},
            **{name: {"promise": {"min_size_ratio": 2.9},
                      "why": f"measured 3.05-3.07x as for ptq_int8 ({_PER_CHANNEL}); "
                             "tfmot does not cluster DepthwiseConv2D kernels"}
               for name in ("cluster_int8", "cqat_int8")},
            "pqat_int8": {"promise": {"min_gzip_ratio": 7.0},
                          "why": "measured 7.5x gzip: tfmot does not prune DepthwiseConv2D, "
                                 "and the first/last layers stay dense"},
        }),
    FixtureSpec(
        "seq_rnn", "waveforms.npz", waveform_data, _seq_rnn, epochs=40,
        learning_rate=3e-3, static_batch=1,
        recipe_overrides=_tflm("seq_rnn", 12, {
            "ptq_dynamic": {"promise": {"min_size_ratio": None},
                            "why": "dynamic-range PTQ leaves the fused LSTM float: "
                                   "measured 1.00x"},
            "ptq_float16": {"promise": {"min_size_ratio": 1.6},
                            "why": "measured 1.72x: a 10K-parameter model, the graph and "
                                   "metadata are a large share of the file"},
            "ptq_int8": {"promise": {"min_size_ratio": 2.5},
                         "why": "measured 2.85x on 10K parameters (fixed overhead)",
                         "nondeterministic": SEQ_INT8_NONDETERMINISTIC},
            "prune": {**_SEQ_PRUNE, "why": _SEQ_PRUNE_WHY},
            "prune_int8": {**_SEQ_PRUNE, "promise": {"min_size_ratio": 2.5,
                                                     "min_gzip_ratio": 4.0},
                           "why": _SEQ_PRUNE_WHY + "; int8 ratio as for ptq_int8"},
            "ptq_int16x8": {"unsupported": "the converter has no 16x8 kernel for "
                                           "UNIDIRECTIONAL_SEQUENCE_LSTM"},
            "qat_int8": {"unsupported": "tfmot's default QAT scheme does not support LSTM"},
            **{name: {"unsupported": _SEQ_NO_CHANNELS}
               for name in ("channel_prune_int8", "channel_prune_qat_int8")},
            "prune_2by4": {"promise": {"min_gzip_ratio": None},
                           "why": "tfmot's 2:4 sparsity covers Conv2D and Dense kernels "
                                  "only; the LSTM holds 98 % of the weights (measured gzip "
                                  "ratio 1.01x, sparsity 0.01)"},
            **{name: {"promise": {"min_size_ratio": None}, "why": _LQ_LSTM_WHY}
               for name in _LQ_RECIPES},
            **{name: {"unsupported": "tfmot's prune- and cluster-preserving QAT schemes do "
                                     "not support LSTM"}
               for name in ("pqat_int8", "cqat_int8")},
            "cluster_int8": {"promise": {"min_size_ratio": 2.5},
                             "why": "measured 2.86x on 10K parameters, as for ptq_int8"},
        })),
    FixtureSpec(
        "tabular_mlp", "breast_cancer.npz", breast_cancer_data, _tabular_mlp,
        epochs=60, learning_rate=3e-4,
        recipe_overrides=_tflm("tabular_mlp", 1, {
            **{name: {"promise": {"min_size_ratio": 1.8},
                      "why": "4K parameters: graph, quantization parameters and metadata "
                             "are most of the file (measured 2.0-2.6x)"}
               for name in ("ptq_int8", "qat_int8", "ptq_dynamic")},
            "ptq_float16": {"promise": {"min_size_ratio": 1.5},
                            "why": "measured 1.65x on 4K parameters"},
            "ptq_int16x8": {"promise": {"min_size_ratio": 1.5},
                            "why": "measured 1.71x on 4K parameters"},
            "prune": {"promise": {"min_gzip_ratio": 1.3},
                      "why": "only the middle layer is pruned (first/last kept dense): "
                             "measured 1.45x"},
            "prune_int8": {"promise": {"min_size_ratio": 1.8, "min_gzip_ratio": 3.0},
                           "why": "only the middle layer is pruned: measured 3.3x gzip"},
            "prune_2by4": {"promise": {"min_gzip_ratio": 1.1},
                           "why": "only the middle layer is pruned: measured 1.2x gzip"},
            **{name: {"promise": {"min_size_ratio": ratio},
                      "why": f"4K parameters: graph and metadata are most of the file "
                             f"(measured {measured})"}
               for name, ratio, measured in (("lq_int4_weight_only", 2.5, "3.06x"),
                                             ("lq_int8_dynamic", 1.8, "2.40x"),
                                             ("lq_int8_static", 1.8, "2.04x"),
                                             ("lq_int8_mse", 1.8, "2.04x"),
                                             ("lq_int8_octav", 1.8, "2.04x"),
                                             ("lq_int8_gptq", 1.8, "2.04x"),
                                             ("lq_int4_mse", 2.5, "3.06x"),
                                             ("lq_int4_octav", 2.5, "3.06x"))},
            "pqat_int8": {"promise": {"min_gzip_ratio": 3.0},
                          "why": "only the middle layer is pruned: measured 3.9x gzip"},
            **{name: {"promise": {"min_size_ratio": 1.8, "min_gzip_ratio": 3.0},
                      "why": "4K parameters: graph, quantization parameters and metadata "
                             "are most of the file (measured 2.0-2.6x raw, 3.4-4.0x gzip)"}
               for name in ("cluster_int8", "cqat_int8")},
        })),
)


def _make_reproducible(path: Path) -> None:
    """Rewrite a ``.keras`` archive with fixed entry timestamps and save date.

    The weights are byte-identical across deterministic builds; only the zip entry
    times, ``metadata.json``'s ``date_saved`` and the ``shared_object_id``s in
    ``config.json`` (Python ``id()``s) vary, which would churn the sha256s.
    """
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, payload in entries:
            if name == "metadata.json":
                meta = json.loads(payload)
                meta["date_saved"] = "reproducible-build"
                payload = json.dumps(meta).encode()
            elif name == "config.json":
                payload = json.dumps(_renumber_shared_ids(json.loads(payload))).encode()
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), payload)


def _renumber_shared_ids(config: Any, ids: dict[int, int] | None = None) -> Any:
    """Replace each ``shared_object_id`` by its order of first appearance (same sharing)."""
    ids = {} if ids is None else ids
    if isinstance(config, dict):
        return {k: (ids.setdefault(v, len(ids)) if k == "shared_object_id"
                    else _renumber_shared_ids(v, ids)) for k, v in config.items()}
    if isinstance(config, list):
        return [_renumber_shared_ids(v, ids) for v in config]
    return config


def _save_npz(path: Path, data: Dataset) -> None:
    # np.savez writes zip entries with a fixed timestamp: the same arrays, the same bytes.
    np.savez_compressed(path, **{k: getattr(data, k) for k in data.__dataclass_fields__})


def build(spec: FixtureSpec, out: Path) -> dict[str, Any]:
    """Train ``spec``'s float model and write it with its data; return its manifest entry."""
    deterministic()
    keras = import_keras()
    data = spec.data()
    data_path = out / spec.data_file
    _save_npz(data_path, data)
    model = spec.build()
    trainable = with_batch(model, None) if spec.static_batch else model
    trainable.compile(optimizer=keras.optimizers.Adam(spec.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    trainable.fit(data.x_train, data.y_train, epochs=spec.epochs, batch_size=32,
                  shuffle=True, verbose=0)
    if spec.static_batch:
        model.set_weights(trainable.get_weights())
    # A freshly compiled optimizer has no slot variables yet: the saved file keeps the
    # training config (loss, metrics) for fine-tuning but not Adam's state.
    model.compile(optimizer=keras.optimizers.Adam(spec.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    accuracy = float(np.mean(
        np.argmax(model.predict(data.x_test, batch_size=spec.static_batch or 256, verbose=0),
                  axis=-1) == data.y_test))
    model_file = f"{spec.name}.keras"
    model.save(out / model_file)
    _make_reproducible(out / model_file)
    return {
        "model": model_file,
        "data": spec.data_file,
        "static_batch": spec.static_batch,
        "recipe_overrides": spec.recipe_overrides,
        "about": {
            "built_by": BUILD_COMMAND,
            # Training kernels are ISA-specific: the same bytes come back on this class.
            "built_on": machine_class(this_machine()),
            "sha256": {model_file: file_sha256(out / model_file),
                       spec.data_file: file_sha256(data_path)},
            "params": int(model.count_params()),
            "float_test_accuracy": round(accuracy, 6),
            "splits": {s: len(getattr(data, f"y_{s}")) for s in ("train", "calib", "test")},
        },
    }


def build_all(out: Path, names: list[str] | None = None,
              log: Callable[[str], None] = print) -> Path:
    """Build the named fixtures (all by default) and (re)write ``out/manifest.json``, a
    config file (``project.config``) that a project includes."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest: dict[str, Any] = {"models": {}}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    for spec in FIXTURES:
        if names and spec.name not in names:
            continue
        entry = build(spec, out)
        log(f"{spec.name}: {entry['about']['params']} params, "
            f"float test accuracy {entry['about']['float_test_accuracy']:.4f}")
        manifest["models"][spec.name] = entry
    manifest["about"] = {"versions": versions()}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest_path
