"""Other pipelines' exports, for the candidate tests: run as a build command or directly.

    python tests/exports.py keras2 --model M.keras --data D.npz --out OUT [--zero-calibration]
                                   [--extra-class]
    python tests/exports.py keras3 --data D.npz --float-out F.tflite --out OUT
    python tests/exports.py restamp --src FILE --out OUT

``keras2``: the TF converter's int8 PTQ of a tf_keras model, float I/O, as a team's own
script would write it (``--zero-calibration`` calibrates on zeros, a planted fault;
``--extra-class`` adds a fourth output). ``keras3``: a small Keras 3 model trained on the
data, exported by Keras 3's own ``model.export(format="litert")``, float and int8.
``restamp``: the same graph and weights with another description string: other bytes,
the same outputs.
"""

import argparse
import os
from pathlib import Path

import numpy as np


def keras2(args) -> bytes:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras

    model = tf_keras.models.load_model(args.model)
    if args.extra_class:
        extra = tf_keras.layers.Dense(4, name="extra_class")
        model = tf_keras.Model(model.inputs, extra(model.outputs[0]))
    x = np.load(args.data)["x_calib"].astype(np.float32)
    if args.zero_calibration:
        x = np.zeros_like(x)

    def rows():
        for row in x:
            yield [row[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = rows
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def keras3(args) -> bytes:
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    data = np.load(args.data)
    model = keras.Sequential([keras.Input((data["x_train"].shape[1],)),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy")
    model.fit(data["x_train"], data["y_train"], epochs=20, verbose=0)
    model.export(args.float_out, format="litert", verbose=False)
    calib = data["x_calib"].astype(np.float32)

    def rows():
        for row in calib:
            yield [row[None]]

    out = Path(args.out)
    model.export(str(out), format="litert", verbose=False,
                 optimizations=[tf.lite.Optimize.DEFAULT], representative_dataset=rows)
    return out.read_bytes()


def restamp(args) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(Path(args.src).read_bytes(), 0)
    model.description = "restamped by another pipeline"
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["keras2", "keras3", "restamp"])
    parser.add_argument("--model")
    parser.add_argument("--data")
    parser.add_argument("--src")
    parser.add_argument("--float-out")
    parser.add_argument("--out", required=True)
    parser.add_argument("--zero-calibration", action="store_true")
    parser.add_argument("--extra-class", action="store_true")
    args = parser.parse_args()
    tflite = {"keras2": keras2, "keras3": keras3, "restamp": restamp}[args.mode](args)
    Path(args.out).write_bytes(tflite)


if __name__ == "__main__":
    main()
