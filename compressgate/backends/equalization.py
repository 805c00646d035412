"""Data-free quantization's arithmetic (Nagel et al. 2019), numpy only, no TensorFlow.

A *unit* is one weight layer with any BatchNorm after it folded in (``fold_batchnorm``):
its kernel ``W`` and bias ``b`` compute what the layer and the BatchNorm computed. Kinds:
``"conv"`` (kernel ``[..., in, out]``, also Dense ``[in, out]``) and ``"depthwise"``
(``[kh, kw, channels, 1]``: input channel c is output channel c).

- Cross-layer equalization (``equalize_pair``): unit 1's output channel i is divided by
  ``s_i`` and unit 2's input channel i multiplied by it, with ``s_i = sqrt(r1_i * r2_i) /
  r2_i`` (``r`` the channel's weight range), so that both ranges become
  ``sqrt(r1_i * r2_i)``. ReLU is positively homogeneous, so the float model is
  unchanged. ReLU6 is only where its clip is not reached: a channel whose activation
  reached 6 on the calibration split keeps ``s_i = 1``, and the others keep
  ``s_i >= max_i / 6`` so that the scaled channel stays under the clip (``clip_bounds``).
- Bias absorption (``absorb``): a channel whose activation input never went below
  ``c_i > 0`` on the calibration split passes ``c_i`` through unit 2's bias instead.
- Bias correction (``expected_shift``): the mean change of a unit's output that rounding
  its kernel to int8 causes, over the calibration split's inputs, taken off its bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Kind = Literal["conv", "depthwise"]
# ReLU6's clip: activations at or above this (less a rounding margin) reached it.
RELU6 = 6.0
_CLIP_MARGIN = 1e-6
# Equalization sweeps over a chain of pairs until no scale moves more than this.
_CONVERGED = 1e-4
MAX_SWEEPS = 100


@dataclass
class Unit:
    """One weight layer with its BatchNorm folded in (float64)."""

    name: str
    kind: Kind
    kernel: np.ndarray
    bias: np.ndarray

    def out_ranges(self) -> np.ndarray:
        """Largest |weight| of each output channel."""
        w = np.abs(self.kernel)
        if self.kind == "depthwise":
            return w.max(axis=tuple(i for i in range(w.ndim) if i != w.ndim - 2))
        return w.reshape(-1, w.shape[-1]).max(axis=0)

    def in_ranges(self) -> np.ndarray:
        """Largest |weight| of each input channel."""
        w = np.abs(self.kernel)
        return w.max(axis=tuple(i for i in range(w.ndim) if i != w.ndim - 2))

    def scale_outputs(self, factor: np.ndarray) -> None:
        """Multiply output channel i (kernel and bias) by ``factor[i]``."""
        if self.kind == "depthwise":
            self.kernel = self.kernel * factor[:, None]
        else:
            self.kernel = self.kernel * factor
        self.bias = self.bias * factor

    def scale_inputs(self, factor: np.ndarray) -> None:
        """Multiply input channel i of the kernel by ``factor[i]``."""
        self.kernel = self.kernel * factor[:, None]


def fold_batchnorm(kernel: np.ndarray, bias: np.ndarray | None, kind: Kind, *,
                   gamma: np.ndarray | None, beta: np.ndarray | None, mean: np.ndarray,
                   variance: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) computing ``BN(layer(x))`` in inference mode (float64)."""
    kernel = kernel.astype(np.float64)
    channels = mean.shape[0]
    bias = np.zeros(channels) if bias is None else bias.astype(np.float64)
    factor = (np.ones(channels) if gamma is None else gamma.astype(np.float64)) / np.sqrt(
        variance.astype(np.float64) + epsilon)
    shift = np.zeros(channels) if beta is None else beta.astype(np.float64)
    unit = Unit("", kind, kernel, bias - mean.astype(np.float64))
    unit.scale_outputs(factor)
    return unit.kernel, unit.bias + shift


def identity_variance(epsilon: float) -> np.float32:
    """A float32 moving variance ``v`` with ``v + epsilon == 1`` exactly in float32: a
    BatchNorm with gamma 1 and that variance only adds its bias (the folded bias)."""
    eps = np.float32(epsilon)
    v = np.float32(1.0) - eps
    for _ in range(8):  # at most a few ulps off
        total = v + eps
        if total == np.float32(1.0):
            return v
        v = np.nextafter(v, np.float32(2.0) if total < 1 else np.float32(0.0),
                         dtype=np.float32)
    return v


def clip_bounds(maxima: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """For a ReLU6 activation whose per-channel maxima over the calibration split are
    ``maxima``: (lowest allowed s, channels that must keep s = 1 because they reached the
    clip); None for ReLU (no bound)."""
    if maxima is None:
        return None
    clipped = maxima >= RELU6 * (1 - _CLIP_MARGIN)
    return np.where(clipped, 1.0, np.maximum(maxima, 0.0) / RELU6), clipped


def pair_scales(first: Unit, second: Unit, bounds=None) -> np.ndarray:
    """The scales ``s`` equalizing ``first``'s output ranges with ``second``'s input
    ranges (1 where either range is zero), within ReLU6's ``bounds``."""
    r1, r2 = first.out_ranges(), second.in_ranges()
    ok = (r1 > 0) & (r2 > 0)
    s = np.ones_like(r1)
    s[ok] = np.sqrt(r1[ok] * r2[ok]) / r2[ok]
    if bounds is not None:
        low, clipped = bounds
        s = np.maximum(s, low)
        s[clipped] = 1.0
    return s


def equalize_pair(first: Unit, second: Unit, bounds=None) -> np.ndarray:
    """Equalize one pair in place; returns the scales used."""
    s = pair_scales(first, second, bounds)
    first.scale_outputs(1.0 / s)
    second.scale_inputs(s)
    return s


def equalize(units: dict[str, Unit], pairs: list[tuple[str, str]],
             maxima: dict[tuple[str, str], np.ndarray | None]) -> int:
    """Equalize every pair (first, second) of ``units`` in sweeps until the scales
    settle (a unit can be the second of one pair and the first of the next); ``maxima``
    gives each ReLU6 pair's activation maxima (None for ReLU) and is kept up to date.
    Returns the sweeps run."""
    for sweep in range(1, MAX_SWEEPS + 1):
        moved = 0.0
        for pair in pairs:
            first, second = units[pair[0]], units[pair[1]]
            s = equalize_pair(first, second, clip_bounds(maxima.get(pair)))
            if maxima.get(pair) is not None:
                maxima[pair] = maxima[pair] / s
            moved = max(moved, float(np.max(np.abs(np.log(s)))) if s.size else 0.0)
        if moved < _CONVERGED:
            return sweep
    return MAX_SWEEPS


def absorb(first: Unit, second: Unit, minima: np.ndarray,
           maxima: np.ndarray | None) -> np.ndarray:
    """Move ``c_i = max(0, minima_i)`` (the lowest activation of channel i on the
    calibration split) from ``first``'s bias into ``second``'s: exact where the
    activation input stays at or above ``c_i`` (and, for ReLU6, under the clip:
    ``maxima``). ``second`` must see the channel at every kernel position (no zero
    padding). Returns c."""
    c = np.maximum(minima, 0.0)
    if maxima is not None:
        c = np.where(maxima >= RELU6 * (1 - _CLIP_MARGIN), 0.0, c)
    first.bias = first.bias - c
    w = second.kernel
    if second.kind == "depthwise":
        second.bias = second.bias + w.reshape(-1, w.shape[-2]).sum(axis=0) * c
    else:
        second.bias = second.bias + c @ w.reshape(-1, *w.shape[-2:]).sum(axis=0)
    return c


def fake_quant(kernel: np.ndarray, kind: Kind, *, per_tensor: bool) -> np.ndarray:
    """``kernel`` rounded to symmetric int8 as the TFLite converter quantizes weights:
    one scale per output channel (per tensor when ``per_tensor``), range [-127, 127]."""
    w = np.asarray(kernel, dtype=np.float64)
    if per_tensor:
        peak = np.max(np.abs(w)) if w.size else 0.0
    else:
        axis = w.ndim - 2 if kind == "depthwise" else w.ndim - 1
        others = tuple(i for i in range(w.ndim) if i != axis)
        peak = np.max(np.abs(w), axis=others, keepdims=True)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    return np.clip(np.round(w / scale), -127, 127) * scale


@dataclass(frozen=True)
class Window:
    """How a convolution walks its input (channels last); a Dense layer has none."""

    size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: str = "valid"


def window_means(x: np.ndarray, window: Window | None) -> np.ndarray:
    """The mean input each kernel tap sees: over rows and output positions, for each
    kernel offset and channel (``[kh, kw, c]``), zero padding included as TensorFlow pads
    (``"same"``: the extra row/column after); for Dense the mean over all but the last
    axis (``[in]``)."""
    x = np.asarray(x, dtype=np.float64)
    if window is None:
        return x.reshape(-1, x.shape[-1]).mean(axis=0)
    (kh, kw), (sh, sw) = window.size, window.strides
    h, w = x.shape[1:3]
    if window.padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - w, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.empty((kh, kw, x.shape[-1]))
    for a in range(kh):
        for b in range(kw):
            taps = x[:, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw, :]
            out[a, b] = taps.mean(axis=(0, 1, 2))
    return out


def expected_shift(error: np.ndarray, kind: Kind, means: np.ndarray) -> np.ndarray:
    """The mean change of each output channel that a kernel change ``error`` causes,
    given the inputs' ``window_means``: what bias correction takes off the bias."""
    if kind == "depthwise":
        return np.einsum("abc,abc->c", error[..., 0], means)
    if error.ndim == 2:  # Dense
        return means @ error
    return np.einsum("abco,abc->o", error, means)


@dataclass(frozen=True)
class DfqReport:
    """What data-free quantization did to a model (the row records it)."""

    # "first>second" for each pair equalized.
    pairs: tuple[str, ...] = ()
    # Pairs whose bias was absorbed into the second layer (some channel moved).
    absorbed: tuple[str, ...] = ()
    # Layers whose bias was corrected.
    corrected: tuple[str, ...] = ()
    # ReLU6 channels left unscaled: they reached the clip on the calibration split.
    clipped_channels: int = 0
    # The equalized float model against the original on the calibration split:
    # max |difference| over max |output|.
    float_change: float | None = None
    # One line when there was nothing to equalize (not an error).
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dfq_pairs": list(self.pairs), "dfq_absorbed": list(self.absorbed),
                "dfq_corrected": list(self.corrected),
                "dfq_clipped_channels": self.clipped_channels,
                "dfq_float_change": self.float_change, "dfq_note": self.note}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DfqReport | None:
        if "dfq_pairs" not in doc:
            return None
        return cls(tuple(doc["dfq_pairs"]), tuple(doc.get("dfq_absorbed") or ()),
                   tuple(doc.get("dfq_corrected") or ()),
                   int(doc.get("dfq_clipped_channels") or 0), doc.get("dfq_float_change"),
                   doc.get("dfq_note"))


NO_PAIR = ("no Conv2D/DepthwiseConv2D/Dense pair joined by ReLU or ReLU6 to equalize "
           "(bias correction only)")
