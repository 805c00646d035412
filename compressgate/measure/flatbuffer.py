"""What a ``.tflite`` flatbuffer says about itself: ops, dtypes, weight sparsity.

Read with the schema that ships with ai-edge-litert, so no TensorFlow is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from compressgate.errors import UserInputError

# TensorType enum -> numpy dtype, for the types weights and activations come in.
_NUMPY_TYPES = {
    0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16,
    9: np.int8, 10: np.float64,
}
_FLOAT_TYPES = {0, 1, 10}
# Ops that legitimately touch float tensors in a full-integer model.
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


@dataclass(frozen=True)
class Op:
    name: str
    version: int
    float_tensors: bool  # any input or output is a float tensor


@dataclass(frozen=True)
class TfliteInfo:
    ops: tuple[Op, ...]
    weight_elements: int
    zero_weight_elements: int

    @property
    def op_names(self) -> list[str]:
        return sorted({op.name for op in self.ops})

    @property
    def sparsity(self) -> float:
        """Fraction of exactly-zero elements in the constant weight tensors (rank >= 2)."""
        return self.zero_weight_elements / self.weight_elements if self.weight_elements else 0.0

    @property
    def float_ops(self) -> list[str]:
        """Ops computing on float tensors, other than the quantize/dequantize boundary."""
        return sorted({op.name for op in self.ops if op.float_tensors} - _BOUNDARY_OPS)


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _builtin_names() -> dict[int, str]:
    ops = _schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def _weights(model, tensors) -> Iterator[tuple[Any, np.ndarray]]:
    """(tensor, values) for each constant weight tensor: rank >= 2, with a buffer."""
    for tensor in tensors:
        if tensor.ShapeLength() < 2 or tensor.Type() not in _NUMPY_TYPES:
            continue
        buffer = model.Buffers(tensor.Buffer())
        if buffer is None or buffer.DataLength() == 0:
            continue
        yield tensor, buffer.DataAsNumpy().view(_NUMPY_TYPES[tensor.Type()])


def inspect(tflite: bytes, *, name: str = "model") -> TfliteInfo:
    """Parse ops and weight sparsity out of a ``.tflite`` file's bytes."""
    schema = _schema()
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise UserInputError(f"{name}: not a TFLite flatbuffer (missing the TFL3 identifier)")
    try:
        model = schema.Model.GetRootAs(tflite, 0)
        names = _builtin_names()
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            op_name = names.get(builtin, f"BUILTIN_{builtin}")
            if op_name == "CUSTOM":
                op_name = f"CUSTOM:{(code.CustomCode() or b'').decode()}"
            codes.append((op_name, code.Version()))
        ops: list[Op] = []
        total = zeros = 0
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            tensors = [graph.Tensors(t) for t in range(graph.TensorsLength())]
            for o in range(graph.OperatorsLength()):
                op = graph.Operators(o)
                op_name, version = codes[op.OpcodeIndex()]
                touched = [*op.InputsAsNumpy().tolist(), *op.OutputsAsNumpy().tolist()] \
                    if not op.InputsIsNone() else []
                is_float = any(i >= 0 and tensors[i].Type() in _FLOAT_TYPES for i in touched)
                ops.append(Op(op_name, version, is_float))
            for _, values in _weights(model, tensors):
                total += values.size
                zeros += int(np.count_nonzero(values == 0))
    except UserInputError:
        raise
    except Exception as exc:  # a truncated or corrupt flatbuffer raises anything
        detail = (str(exc).strip().splitlines() or [""])[0][:160]
        raise UserInputError(f"{name}: corrupt or truncated TFLite flatbuffer "
                             f"({type(exc).__name__}: {detail})") from None
    return TfliteInfo(tuple(ops), total, zeros)


@dataclass(frozen=True)
class WeightTensor:
    """One constant weight tensor (rank >= 2): its name and how many elements are zero."""

    name: str
    elements: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.elements if self.elements else 0.0


@dataclass(frozen=True)
class Graph:
    """Per-tensor detail of the first subgraph: weight tensors, and each op's outputs."""

    weights: tuple[WeightTensor, ...]
    op_outputs: tuple[tuple[str, tuple[str, ...]], ...]  # (op name, output tensor names)


def graph(tflite: bytes, *, name: str = "model") -> Graph:
    """The weight tensors and op outputs of the main subgraph, by tensor name."""
    inspect(tflite, name=name)  # validates the flatbuffer, one clear line if it is bad
    schema = _schema()
    model = schema.Model.GetRootAs(tflite, 0)
    names = _builtin_names()
    codes = [names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "CUSTOM")
             for c in (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))]
    main = model.Subgraphs(0)
    tensors = [main.Tensors(t) for t in range(main.TensorsLength())]
    weights = [WeightTensor(tensor.Name().decode(), int(values.size),
                            int(np.count_nonzero(values == 0)))
               for tensor, values in _weights(model, tensors)]
    outputs = []
    for o in range(main.OperatorsLength()):
        op = main.Operators(o)
        outs = [] if op.OutputsIsNone() else op.OutputsAsNumpy().tolist()
        outputs.append((codes[op.OpcodeIndex()],
                        tuple(tensors[i].Name().decode() for i in outs if i >= 0)))
    return Graph(tuple(weights), tuple(outputs))


# Ops whose weight input (index 1) has its output channels on this axis, for float
# kernels (quantized ones name their own ``quantized_dimension``).
_CHANNEL_AXIS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0, "CONV_3D": 4,
                 "DEPTHWISE_CONV_2D": 3}


def kernels(tflite: bytes, *, name: str = "model") -> list[tuple[np.ndarray, int | None]]:
    """Every constant weight tensor (rank >= 2) of every subgraph, shaped, with the axis of
    its output channels (None: unknown, count the tensor as a whole)."""
    return [(values, axis) for _, values, axis in named_kernels(tflite, name=name)]


def named_kernels(tflite: bytes, *,
                  name: str = "model") -> list[tuple[str, np.ndarray, int | None]]:
    """``kernels`` with each tensor's name first."""
    inspect(tflite, name=name)  # validates the flatbuffer, one clear line if it is bad
    model = _schema().Model.GetRootAs(tflite, 0)
    names = _builtin_names()
    codes = [names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "CUSTOM")
             for c in (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))]
    out = []
    for s in range(model.SubgraphsLength()):
        graph_ = model.Subgraphs(s)
        axis_of: dict[int, int] = {}
        for o in range(graph_.OperatorsLength()):
            op = graph_.Operators(o)
            axis = _CHANNEL_AXIS.get(codes[op.OpcodeIndex()])
            if axis is not None and not op.InputsIsNone() and op.InputsLength() > 1:
                axis_of[int(op.Inputs(1))] = axis
        tensors = [graph_.Tensors(t) for t in range(graph_.TensorsLength())]
        for index, (tensor, values) in ((i, w) for i, t in enumerate(tensors)
                                        for w in _weights(model, [t])):
            shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
            quant = tensor.Quantization()
            if quant is not None and quant.ScaleLength() > 1:
                axis = int(quant.QuantizedDimension())
            else:
                axis = axis_of.get(index)
            shaped = values.reshape(shape) if int(np.prod(shape)) == values.size else values
            out.append((tensor.Name().decode(), shaped,
                        axis if axis is not None and axis < shaped.ndim else None))
    return out


def misfit_buffers(tflite: bytes, *, name: str = "model") -> list[str]:
    """Constant tensors whose buffer is not shape x element size bytes (a writer's bug:
    LiteRT reads the first bytes as the tensor and runs garbage), as "name: N bytes for
    M elements of type"."""
    inspect(tflite, name=name)
    model = _schema().Model.GetRootAs(tflite, 0)
    out = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            kind = _NUMPY_TYPES.get(tensor.Type())
            buffer = model.Buffers(tensor.Buffer())
            if kind is None or buffer is None:
                continue
            # Inline data, or (files past 2 GB, litert-quantizer's) offset and size into
            # the bytes after the flatbuffer.
            size = buffer.DataLength() or (buffer.Size() if buffer.Offset() > 1 else 0)
            elements = int(np.prod(tensor.ShapeAsNumpy())) if tensor.ShapeLength() else 1
            if size and size != elements * np.dtype(kind).itemsize:
                out.append(f"{tensor.Name().decode()}: {size} bytes for {elements} "
                           f"{np.dtype(kind).name} elements")
    return out


@dataclass(frozen=True)
class Precision:
    """What a quantizer needs to know of its input: is it float, and can it be read."""

    quantized_tensors: int  # tensors with quantization parameters (scales)
    float16_weights: int  # constant weight tensors stored as float16
    # Ops whose code is only in the deprecated int8 field (builtin_code left 0, as old
    # converters wrote them): tools that read builtin_code see ADD.
    deprecated_codes: tuple[str, ...]
    signatures: tuple[str, ...]  # SignatureDef keys

    @property
    def is_float(self) -> bool:
        return self.quantized_tensors == 0 and self.float16_weights == 0


def precision(tflite: bytes, *, name: str = "model") -> Precision:
    """Quantized and float16 tensors, deprecated op codes and signatures of a file."""
    inspect(tflite, name=name)  # validates the flatbuffer, one clear line if it is bad
    model = _schema().Model.GetRootAs(tflite, 0)
    names = _builtin_names()
    deprecated = tuple(sorted({
        names.get(code.DeprecatedBuiltinCode(), "?")
        for code in (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
        if code.BuiltinCode() < code.DeprecatedBuiltinCode()}))
    quantized = half = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        tensors = [graph.Tensors(t) for t in range(graph.TensorsLength())]
        for tensor in tensors:
            q = tensor.Quantization()
            quantized += int(q is not None and q.ScaleLength() > 0)
        half += sum(1 for tensor, _ in _weights(model, tensors) if tensor.Type() == 1)
    keys = tuple((model.SignatureDefs(i).SignatureKey() or b"").decode()
                 for i in range(model.SignatureDefsLength()))
    return Precision(quantized, half, deprecated, keys)
