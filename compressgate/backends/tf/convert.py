"""Recipe -> ``.tflite`` bytes: fine-tune (QAT, pruning) and convert a fresh copy of the
model.

Every recipe starts from a fresh load of the model file: ``prune_low_magnitude`` and QAT
wrap the original layer objects, so reusing one model object would silently compress the
float reference too.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np

import compressgate.backends.tf.dfq as dfq
import compressgate.backends.tf.keras3 as keras3
import compressgate.backends.tf.qat as qat
import compressgate.backends.tf.qat_start as qat_start
import compressgate.backends.tf.recurrent as recurrent
from compressgate.backends import litert_quant, tflite_source
from compressgate.backends.protocol import Artifact, RecipeUnsupported
from compressgate.backends.tf.channel_prune import prune_channels
from compressgate.backends.tf.env import (
    clusterable,
    converter_reason,
    deterministic,
    first_line,
    import_keras,
    import_tfmot,
    is_keras3_model,
    make_converter,
    preserving_scheme,
    prunable,
    quiet,
    with_batch,
)
from compressgate.backends.tf.keep_float import check_keep_float, convert_keep_float
from compressgate.backends.tf.loading import load_any, model_info
from compressgate.errors import UserInputError
from compressgate.project.models import Dataset, ModelSpec, needs_tf_keras
from compressgate.recipes import REFERENCE, Recipe

TENSORBOARD_ENV = "COMPRESSGATE_TENSORBOARD"
# The float recipe's conversion: the input of litert-quantizer recipes.
_FLOAT = Recipe(REFERENCE, optimize=False)


def _compile_like(model, source, learning_rate: float) -> None:
    keras = import_keras()
    loss = getattr(source, "loss", None) or "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
                  metrics=["accuracy"])


def tensorboard_dir(model: str, recipe: str) -> Path | None:
    """Where a fine-tune writes TensorBoard logs: ``$COMPRESSGATE_TENSORBOARD/<model>-<recipe>``
    (an environment variable, so worker processes see it too), or None."""
    root = os.environ.get(TENSORBOARD_ENV)
    return Path(root) / f"{model}-{recipe}" if root else None


def use_tensorboard(directory: Path) -> None:
    """Send fine-tune logs to ``directory``: one clear line if TensorBoard is missing."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise UserInputError(f"TensorBoard logs to {directory}: the tensorboard package is "
                             "not installed (pip install 'compressgate[tensorboard]')")
    os.environ[TENSORBOARD_ENV] = str(directory.resolve())


def _tensorboard(logs: Path | None, *, pruning: bool = False) -> list:
    """Keras TensorBoard (loss, accuracy) and, when pruning, tfmot's ``PruningSummaries``
    (sparsity and threshold per pruned weight) into ``logs``."""
    if logs is None:
        return []
    callbacks = [import_keras().callbacks.TensorBoard(log_dir=str(logs))]
    if pruning:
        callbacks.append(import_tfmot().sparsity.keras.PruningSummaries(log_dir=str(logs)))
    return callbacks


def _qat(model, recipe: Recipe, data: Dataset, logs: Path | None = None):
    kept = recipe.keep_float if isinstance(recipe.keep_float, tuple) else ()
    scheme = None
    if recipe.qat_preserve is not None:
        scheme = preserving_scheme(recipe.qat_preserve, sparsity=recipe.prune is not None)
    q_model = qat.quantize(model, kept, scheme)
    if recipe.qat_start == "calibrated":  # start from the pretrained float model
        qat_start.prepare(q_model, data.x_calib[:recipe.calibration_samples])
    _compile_like(q_model, model, recipe.finetune.learning_rate)
    # Cluster-preserving QAT trains the centroids, not the kernels it rebuilds from them:
    # TensorFlow warns on every step that the kernels get no gradient.
    with quiet() if recipe.qat_preserve == "clusters" else contextlib.nullcontext():
        q_model.fit(data.x_train, data.y_train, epochs=recipe.finetune.epochs,
                    callbacks=_tensorboard(logs),
                    batch_size=recipe.finetune.batch_size, shuffle=True, verbose=0)
    return q_model


def _prune(model, recipe: Recipe, data: Dataset, logs: Path | None = None):
    tfmot = import_tfmot()
    keras = import_keras()
    spec = recipe.prune
    assert spec is not None
    steps_per_epoch = int(np.ceil(len(data.x_train) / recipe.finetune.batch_size))
    total = steps_per_epoch * recipe.finetune.epochs
    begin, end = int(spec.begin * total), max(1, int(spec.end * total))
    kwargs: dict = {}
    if spec.structure == "2by4":
        schedule = tfmot.sparsity.keras.ConstantSparsity(
            0.5, begin_step=begin, end_step=end, frequency=spec.frequency)
        kwargs["sparsity_m_by_n"] = (2, 4)
    else:
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=spec.initial_sparsity, final_sparsity=spec.final_sparsity,
            begin_step=begin, end_step=end, frequency=spec.frequency)
    candidates = [layer for layer in model.layers if prunable(layer)]
    if spec.structure == "2by4":
        # tfmot's m-by-n sparsity covers Conv2D and Dense kernels only.
        candidates = [c for c in candidates
                      if isinstance(c, keras.layers.Conv2D | keras.layers.Dense)]
    if spec.skip_first_and_last and len(candidates) > 2:
        candidates = candidates[1:-1]
    if not candidates:
        raise RecipeUnsupported("no layer of this model can be pruned by tfmot")
    targets = {layer.name for layer in candidates}

    def wrap(layer):
        if layer.name in targets:
            return tfmot.sparsity.keras.prune_low_magnitude(
                layer, pruning_schedule=schedule, **kwargs)
        return layer

    pruned = keras.models.clone_model(model, clone_function=wrap)
    _compile_like(pruned, model, recipe.finetune.learning_rate)
    pruned.fit(data.x_train, data.y_train, epochs=recipe.finetune.epochs,
               batch_size=recipe.finetune.batch_size, shuffle=True, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep(),
                          *_tensorboard(logs, pruning=True)])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    if spec.recalibrate_batchnorm:
        _recalibrate_batchnorm(stripped, data.x_train)
    return stripped


def _channel_prune(model, recipe: Recipe, data: Dataset, logs: Path | None = None):
    """Remove channels (a narrower dense model), then fine-tune it in float."""
    spec = recipe.channel_prune
    assert spec is not None
    narrow = prune_channels(model, spec)
    if spec.recalibrate_batchnorm:
        _recalibrate_batchnorm(narrow, data.x_train)
    _compile_like(narrow, model, recipe.finetune.learning_rate)
    narrow.fit(data.x_train, data.y_train, epochs=recipe.finetune.epochs,
               batch_size=recipe.finetune.batch_size, shuffle=True, verbose=0,
               callbacks=_tensorboard(logs))
    return narrow


def _cluster(model, recipe: Recipe, data: Dataset, logs: Path | None = None):
    """``cluster_weights`` on every layer tfmot clusters, fine-tune, ``strip_clustering``;
    after pruning, the zeros are kept (``preserve_sparsity``)."""
    tfmot = import_tfmot()
    keras = import_keras()
    spec = recipe.cluster
    assert spec is not None
    api = tfmot.clustering.keras
    targets = {layer.name for layer in model.layers if clusterable(layer)}
    if not targets:
        raise RecipeUnsupported("no layer of this model can be clustered by tfmot (it "
                                "clusters Conv/Dense/RNN kernels, not DepthwiseConv2D)")
    kwargs = {"number_of_clusters": spec.number_of_clusters,
              "cluster_centroids_init": getattr(api.CentroidInitialization, spec.init.upper()),
              "preserve_sparsity": recipe.prune is not None}

    def wrap(layer):
        return api.cluster_weights(layer, **kwargs) if layer.name in targets else layer

    try:
        with quiet():
            clustered = keras.models.clone_model(model, clone_function=wrap)
    except (RuntimeError, ValueError) as exc:
        raise RecipeUnsupported(
            f"tfmot cannot cluster this model: {first_line(exc)}") from None
    _compile_like(clustered, model, recipe.finetune.learning_rate)
    clustered.fit(data.x_train, data.y_train, epochs=recipe.finetune.epochs,
                  batch_size=recipe.finetune.batch_size, shuffle=True, verbose=0,
                  callbacks=_tensorboard(logs))
    stripped = api.strip_clustering(clustered)
    # The moving statistics lag the clustered kernels, as after pruning.
    _recalibrate_batchnorm(stripped, data.x_train)
    return stripped


def _recalibrate_batchnorm(model, x: np.ndarray) -> None:
    """Set BatchNorm moving statistics to the training split's statistics under the
    final (pruned) weights: one full-batch pass in training mode with momentum 0."""
    keras = import_keras()
    layers = [m for m in model.submodules if isinstance(m, keras.layers.BatchNormalization)]
    if not layers:
        return
    saved = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        for chunk in np.array_split(x, max(1, len(x) // 2048)):
            model(chunk, training=True)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum


def _accuracy(model, data: Dataset) -> float:
    """Top-1 accuracy of a Keras model on the test split."""
    scores = model.predict(data.x_test, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(scores, axis=-1) == data.y_test))


def _convert(model, recipe: Recipe, data: Dataset) -> bytes:
    if recipe.litert_recipe is not None:  # the float file, then litert-quantizer
        float_tflite = _convert(model, _FLOAT, data)
        return litert_quant.quantize(float_tflite, recipe, data, name=model.name)
    converter = make_converter(model, recipe, data)
    try:
        with quiet():
            return converter.convert()
    except Exception as exc:  # the converter raises ConverterError, RuntimeError, ...
        raise RecipeUnsupported(f"converter failed: {converter_reason(exc)}") from None


def _perturb(model, fraction: float) -> None:
    """Plant perturbed weights: seeded Gaussian noise of ``fraction`` times each float
    trainable weight tensor's standard deviation (a fault only the accepted result can
    reveal; BatchNorm statistics are left alone, a negative variance is no small fault)."""
    rng = np.random.default_rng(0)
    for variable in model.trainable_weights:
        w = variable.numpy()
        if w.size > 1:
            variable.assign(w + rng.normal(0.0, fraction * float(np.std(w)), w.shape)
                            .astype(w.dtype))


def _keras3_model(source: keras3.Keras3Model, spec: ModelSpec, recipe: Recipe,
                  data: Dataset):
    """The model ``recipe`` runs on for a Keras 3 source: the twin once verified on the
    test split, else the Keras 3 model itself for a converter-only recipe; for a recipe
    that needs tf_keras without a faithful twin, the one line saying why (a str)."""
    if source.twin is not None:
        verified = keras3.verify(source, data.x_test, spec.static_batch)
        if verified.mismatch is None:
            return source.twin
        if needs_tf_keras(recipe):
            return verified.mismatch
        return source.model
    if needs_tf_keras(recipe):
        return spec.unsupported(recipe) or (
            f"model {spec.name!r}: {recipe.name} needs tf_keras (tfmot), and "
            f"{source.blocker}")
    return source.model


def compress(spec: ModelSpec, recipe: Recipe, data: Dataset) -> Artifact:
    """Run ``recipe`` on a fresh copy of ``spec``'s model and convert it to ``.tflite``.

    Bad user input raises ``UserInputError``; a recipe that tfmot or the converter cannot
    apply to this model returns an ``Artifact`` carrying the reason.
    """
    if spec.is_tflite:  # no Keras model: the file is the float reference
        return tflite_source.compress(spec, recipe, data)
    deterministic()
    loaded = load_any(spec)
    reference = loaded
    if isinstance(loaded, keras3.Keras3Model):
        reference = loaded.model  # the float reference stays the user's own model
        choice = _keras3_model(loaded, spec, recipe, data)
        if isinstance(choice, str):
            return Artifact(None, error=choice)
        loaded = choice
    model = loaded
    if recipe.perturb_weights:
        _perturb(model, recipe.perturb_weights)
    input_shape, num_classes = model_info(model)
    classification = spec.metric.is_accuracy
    data.check_fits(input_shape=input_shape, num_classes=num_classes, model=spec.name,
                    data=str(spec.data), classification=classification)
    if recipe.needs_finetune and not classification and not getattr(model, "loss", None):
        raise UserInputError(
            f"model {spec.name!r}: recipe {recipe.name} fine-tunes, and the model is not "
            "compiled: save it compiled (or compile it in its module:function) so its loss "
            "is known")
    keras_top1 = None
    if recipe.is_reference and classification:
        keras_top1 = np.argmax(reference.predict(
            data.x_test, batch_size=spec.static_batch or 256, verbose=0), axis=-1)
    finetune_seconds = 0.0
    finetuned_accuracy = None
    logs = tensorboard_dir(spec.name, recipe.name)
    mixed = None
    equalized = None
    if recipe.keep_float is not None:
        try:  # before any fine-tune: a misspelt layer costs nothing
            check_keep_float(model, recipe, spec.name)
        except UserInputError as exc:  # this result fails; the run and report go on
            return Artifact(None, error=str(exc))
    try:
        if recipe.needs_finetune:
            start = time.perf_counter()
            # Fine-tune at a dynamic batch even when the model converts at a static one.
            trainable = with_batch(model, None) if spec.static_batch else model
            # Narrow, prune, cluster, then QAT: each preserving stage keeps what came
            # before.
            if recipe.channel_prune is not None:
                trainable = _channel_prune(trainable, recipe, data, logs)
            if recipe.prune is not None:
                trainable = _prune(trainable, recipe, data, logs)
            if recipe.cluster is not None:
                trainable = _cluster(trainable, recipe, data, logs)
            stages = (recipe.channel_prune, recipe.prune, recipe.cluster)
            if classification and any(stage is not None for stage in stages):
                finetuned_accuracy = _accuracy(trainable, data)  # float, before QAT
            if recipe.qat:
                trainable = _qat(trainable, recipe, data, logs)
            model = with_batch(trainable, spec.static_batch) if spec.static_batch else trainable
            finetune_seconds = time.perf_counter() - start
        start = time.perf_counter()
        if recipe.dfq is not None:  # on the float model the converter will quantize
            equalized = dfq.apply(model, recipe, data)
        if not is_keras3_model(model):
            model = recurrent.for_conversion(model, spec.static_batch, recipe)
        if recipe.keep_float is not None:
            mixed = convert_keep_float(model, recipe, data, spec)
            tflite = mixed.tflite
        else:
            tflite = _convert(model, recipe, data)
        convert_seconds = time.perf_counter() - start
    except RecipeUnsupported as exc:
        error = recurrent.explain(str(exc), model, spec.static_batch, spec.name)
        return Artifact(None, error=error, finetune_seconds=finetune_seconds)
    return Artifact(tflite, None, finetune_seconds, convert_seconds, keras_top1,
                    kept_float=mixed.kept if mixed else None,
                    search=mixed.search if mixed else None,
                    finetuned_accuracy=finetuned_accuracy, dfq=equalized)
