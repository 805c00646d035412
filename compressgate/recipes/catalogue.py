"""The recipes compressgate ships: the default ones, then the opt-in litert-quantizer,
collaborative-optimization, channel-pruning and data-free quantization ones (registered
in this order)."""

from __future__ import annotations

from compressgate.recipes.registry import register_recipe
from compressgate.recipes.schema import (
    REFERENCE,
    ChannelPruning,
    Clustering,
    DataFree,
    FineTune,
    Promise,
    Pruning,
    Recipe,
)

_INT8_IO = {"io_dtype": "int8", "integer_only": True}

BUILTIN_RECIPES: tuple[Recipe, ...] = (
    Recipe(REFERENCE, "Reference conversion, no optimization.", optimize=False,
           promise=Promise(io_dtype="float32")),
    Recipe("ptq_dynamic", "Dynamic-range PTQ: int8 weights, float activations.",
           quantization="dynamic", promise=Promise(min_size_ratio=3.0, io_dtype="float32")),
    Recipe("ptq_float16", "Float16 weights.", quantization="float16",
           promise=Promise(min_size_ratio=1.9, io_dtype="float32")),
    Recipe("ptq_int8", "Full-integer PTQ, per-channel weights, int8 input and output.",
           quantization="int8", promise=Promise(min_size_ratio=3.5, **_INT8_IO)),
    Recipe("ptq_int16x8", "int16 activations, int8 weights.", quantization="int16x8",
           promise=Promise(min_size_ratio=3.0, io_dtype="float32")),
    Recipe("qat_int8", "Quantization-aware training, then full-integer conversion.",
           quantization="int8", qat=True, finetune=FineTune(epochs=2, learning_rate=1e-4),
           promise=Promise(min_size_ratio=3.5, **_INT8_IO)),
    Recipe("prune", "Magnitude pruning 50 % -> 80 %, stripped, float.", prune=Pruning(),
           finetune=FineTune(epochs=6, learning_rate=5e-4),
           promise=Promise(min_gzip_ratio=1.5, io_dtype="float32")),
    Recipe("prune_int8", "Magnitude pruning, then full-integer PTQ.", quantization="int8",
           prune=Pruning(), finetune=FineTune(epochs=6, learning_rate=5e-4),
           promise=Promise(min_gzip_ratio=8.0, **_INT8_IO)),
    Recipe("prune_2by4", "Structured 2:4 sparsity (tfmot's sparsity_m_by_n), float.",
           prune=Pruning(initial_sparsity=0.5, final_sparsity=0.5, structure="2by4"),
           finetune=FineTune(epochs=4, learning_rate=5e-4),
           promise=Promise(min_gzip_ratio=1.3, io_dtype="float32")),
)

# litert-quantizer (the optional extra compressgate[litert]) on the float .tflite.
LITERT_QUANTIZER_RECIPES: tuple[Recipe, ...] = (
    Recipe("lq_int4_weight_only", "litert-quantizer: int4 channelwise weights, "
           "dequantized to float at run time (weight_only_wi4_afp32).",
           litert_recipe="weight_only_wi4_afp32",
           promise=Promise(min_size_ratio=4.0, io_dtype="float32")),
    Recipe("lq_int8_dynamic", "litert-quantizer: int8 channelwise weights, activations "
           "quantized at run time (dynamic_wi8_afp32).", litert_recipe="dynamic_wi8_afp32",
           promise=Promise(min_size_ratio=3.0, io_dtype="float32")),
    Recipe("lq_int8_static", "litert-quantizer: int8 weights and activations calibrated "
           "on the calibration split (static_wi8_ai8).", litert_recipe="static_wi8_ai8",
           promise=Promise(min_size_ratio=3.0, io_dtype="int8")),
)

# litert-quantizer's weight algorithms beyond min-max, a way back when int8 loses
# accuracy (issue 24): static int8 (the int8 file, as lq_int8_static) with MSE, OCTAV or
# GPTQ weights, and int4 weight-only (as lq_int4_weight_only) with MSE or OCTAV. Not
# proposed by ``compressgate init``: recovery recipes, tried when min-max loses.
_STATIC_INT8 = {"litert_recipe": "static_wi8_ai8",
                "promise": Promise(min_size_ratio=3.0, io_dtype="int8")}
_INT4_WEIGHTS = {"litert_recipe": "weight_only_wi4_afp32",
                 "promise": Promise(min_size_ratio=4.0, io_dtype="float32")}
LITERT_ALGORITHM_RECIPES: tuple[Recipe, ...] = (
    Recipe("lq_int8_mse", "litert-quantizer static_wi8_ai8, CONV_2D/DEPTHWISE_CONV_2D/"
           "FULLY_CONNECTED weight scales by MSE.", litert_algorithm="mse", **_STATIC_INT8),
    Recipe("lq_int8_octav", "litert-quantizer static_wi8_ai8, CONV_2D/DEPTHWISE_CONV_2D/"
           "FULLY_CONNECTED weight clipping by OCTAV.", litert_algorithm="octav",
           **_STATIC_INT8),
    Recipe("lq_int8_gptq", "litert-quantizer static_wi8_ai8, FULLY_CONNECTED weights "
           "rounded by GPTQ on the calibration split.", litert_algorithm="gptq",
           **_STATIC_INT8),
    Recipe("lq_int4_mse", "litert-quantizer weight_only_wi4_afp32, CONV_2D/"
           "DEPTHWISE_CONV_2D/FULLY_CONNECTED weight scales by MSE.", litert_algorithm="mse",
           **_INT4_WEIGHTS),
    Recipe("lq_int4_octav", "litert-quantizer weight_only_wi4_afp32, CONV_2D/"
           "DEPTHWISE_CONV_2D/FULLY_CONNECTED weight clipping by OCTAV.",
           litert_algorithm="octav", **_INT4_WEIGHTS),
)

for _recipe in BUILTIN_RECIPES:
    register_recipe(_recipe)

# Collaborative optimization (tfmot's prune- and cluster-preserving QAT, clustering):
# opt-in, each fine-tunes once or twice. Every stage fine-tunes with ``finetune``.
_PRUNE_FINETUNE = FineTune(epochs=6, learning_rate=5e-4)
_CLUSTER_FINETUNE = FineTune(epochs=3, learning_rate=1e-4)
COLLABORATIVE_RECIPES: tuple[Recipe, ...] = (
    Recipe("pqat_int8", "Magnitude pruning, then prune-preserving QAT, full integer.",
           quantization="int8", qat=True, qat_preserve="sparsity", prune=Pruning(),
           finetune=_PRUNE_FINETUNE, promise=Promise(min_gzip_ratio=8.0, **_INT8_IO)),
    Recipe("cluster", "Weight clustering, 16 clusters per kernel, stripped, float.",
           cluster=Clustering(), finetune=_CLUSTER_FINETUNE,
           promise=Promise(min_gzip_ratio=2.5, max_clusters=16, io_dtype="float32")),
    Recipe("cluster_int8", "Weight clustering, then full-integer PTQ.", quantization="int8",
           cluster=Clustering(), finetune=_CLUSTER_FINETUNE,
           promise=Promise(min_size_ratio=3.5, min_gzip_ratio=4.0, max_clusters=16,
                           **_INT8_IO)),
    Recipe("cqat_int8", "Weight clustering, then cluster-preserving QAT, full integer.",
           quantization="int8", qat=True, qat_preserve="clusters", cluster=Clustering(),
           finetune=_CLUSTER_FINETUNE,
           promise=Promise(min_size_ratio=3.5, min_gzip_ratio=4.0, max_clusters=16,
                           **_INT8_IO)),
)
for _recipe in (*LITERT_QUANTIZER_RECIPES, *LITERT_ALGORITHM_RECIPES, *COLLABORATIVE_RECIPES):
    register_recipe(_recipe, opt_in=True)

# Structured channel pruning, opt-in: each fine-tunes (the QAT variant twice). 70 % as
# in the articles: on the digits fixtures it measured drops of 0.25-0.75 points (50 %:
# 0-1.25) with int8 files a quarter smaller than at 50 %.
_CHANNELS_70 = ChannelPruning(fraction=0.7)
register_recipe(Recipe(
    "channel_prune_int8", "Channel pruning (70 % of the hidden channels), fine-tune, "
    "then full-integer PTQ: a narrower dense model.", quantization="int8",
    channel_prune=_CHANNELS_70, finetune=FineTune(epochs=6, learning_rate=5e-4),
    promise=Promise(min_size_ratio=3.5, **_INT8_IO)), opt_in=True)
register_recipe(Recipe(
    "channel_prune_qat_int8", "Channel pruning and fine-tune, then QAT and full-integer "
    "conversion.", quantization="int8", qat=True, channel_prune=_CHANNELS_70,
    finetune=FineTune(epochs=6, learning_rate=5e-4),
    promise=Promise(min_size_ratio=3.5, **_INT8_IO)), opt_in=True)

# Data-free quantization (Nagel et al. 2019), opt-in: per-tensor weights lose what
# per-channel ones keep when a layer's channel ranges differ by orders of magnitude;
# equalization evens them out first. No fine-tune: the calibration split only.
DFQ_RECIPES: tuple[Recipe, ...] = (
    Recipe("ptq_int8_per_tensor", "Full-integer PTQ with one weight scale per tensor.",
           quantization="int8", per_tensor=True,
           promise=Promise(min_size_ratio=3.5, **_INT8_IO)),
    Recipe("dfq_int8", "Data-free quantization: BatchNorm folded, cross-layer "
           "equalization, bias absorption and correction, then full-integer PTQ "
           "(per-channel weights).", quantization="int8", dfq=DataFree(),
           promise=Promise(min_size_ratio=3.5, **_INT8_IO)),
    Recipe("dfq_int8_per_tensor", "Data-free quantization, then full-integer PTQ with "
           "one weight scale per tensor.", quantization="int8", per_tensor=True,
           dfq=DataFree(), promise=Promise(min_size_ratio=3.5, **_INT8_IO)),
)
for _recipe in DFQ_RECIPES:
    register_recipe(_recipe, opt_in=True)
