"""The arithmetic of `shipbench fit`: KV cache, weights, what fits in memory, bandwidth-bound decode speed.

Invariants: pure functions of their arguments (no I/O); bytes are exact integers (KV rounded up per context);
memory is binary (GiB = 2**30 bytes, as VRAM is sold), bandwidth decimal (GB/s = 1e9 bytes/s, as it is quoted).
"""

from __future__ import annotations

import math

from shipbench.fit.model import FitInputError, FitReport, ModelShape

GIB = 2**30
MIB = 2**20

# Bytes per cached K/V element. Block-quantized types store 32 elements plus a 2-byte f16 scale
# (q8_0: 32 + 2 = 34 bytes, q4_0: 16 + 2 = 18) and q4_1/q5_x also a 2-byte minimum, as llama.cpp's cache types do.
KV_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
}

# Peak memory bandwidth in GB/s (decimal) by memory class, as the source article lists them (ddr5: dual channel).
MEMORY_CLASSES: dict[str, float] = {
    "ddr4": 50.0,
    "ddr5": 90.0,
    "lpddr5x": 256.0,
    "gddr6": 936.0,
    "gddr7": 1792.0,
    "hbm3": 800.0,
}

STANDARD_CONTEXTS: tuple[int, ...] = (4096, 8192, 16384, 32768, 65536, 131072)

# Memory held back from the weights + KV cache: 10% of the memory (driver, runtime, fragmentation, other
# processes) plus 0.5 GiB for the inference engine's compute buffers (activations, logits, scratch).
OVERHEAD_FRACTION = 0.10
OVERHEAD_FIXED_BYTES = GIB // 2


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FitInputError(f"{what} must be a name or a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise FitInputError(f"{what} must be a positive number, got {text!r}")
    return value


def kv_bytes_per_element(kv_type: str) -> float:
    """Bytes per K/V element for a cache type name (f16, q8_0, ...) or a plain positive number."""
    known = KV_TYPE_BYTES.get(kv_type.strip().lower())
    if known is not None:
        return known
    names = ", ".join(KV_TYPE_BYTES)
    return _number(kv_type, f"KV type (one of {names}, or bytes per element)")


def bandwidth_of(memory_class: str) -> float:
    """GB/s of a memory class name (ddr5, gddr7, ...) or a plain positive number of GB/s."""
    known = MEMORY_CLASSES.get(memory_class.strip().lower())
    if known is not None:
        return known
    names = ", ".join(MEMORY_CLASSES)
    return _number(memory_class, f"--memory-class (one of {names}, or GB/s)")


def kv_bytes_per_token(shape: ModelShape, bytes_per_element: float) -> float:
    """K and V for every layer and KV head: layers x kv_heads x (key dim + value dim) x bytes per element;
    with equal dims this is the usual 2 x layers x kv_heads x head_dim x bytes."""
    value_dim = shape.value_head_dim or shape.head_dim
    return shape.layers * shape.kv_heads * (shape.head_dim + value_dim) * bytes_per_element


def weights_bytes(shape: ModelShape) -> int | None:
    """The weights as read from the file, else params x weight_bits / 8; None when the params are unknown."""
    if shape.weights_bytes is not None:
        return shape.weights_bytes
    if shape.params is None or shape.weight_bits is None:
        return None
    return math.ceil(shape.params * shape.weight_bits / 8)


def usable_memory(memory_bytes: int) -> int:
    """Memory left for weights + KV cache once the overhead margin is held back (never negative)."""
    return max(0, math.floor(memory_bytes * (1 - OVERHEAD_FRACTION)) - OVERHEAD_FIXED_BYTES)


def max_context(usable: int, weights: int, per_token: float, native_max: int | None) -> int:
    """Largest token count whose KV cache fits beside the weights, capped at the native max when known."""
    if weights > usable:
        return 0
    tokens = math.floor((usable - weights) / per_token)
    return tokens if native_max is None else min(tokens, native_max)


def decode_tokens_per_s(bandwidth_gbs: float, total_bytes: int) -> float:
    """Bandwidth-bound upper bound: each decoded token streams all weights and the whole KV cache once."""
    return bandwidth_gbs * 1e9 / total_bytes


def contexts_for(native_max: int | None, requested: int | None) -> list[int]:
    """The standard sizes (those within the native max when known), the native max, and the requested size."""
    sizes = {c for c in STANDARD_CONTEXTS if native_max is None or c <= native_max}
    if native_max is not None:
        sizes.add(native_max)
    if requested is not None:
        sizes.add(requested)
    return sorted(sizes)


def build_report(
    shape: ModelShape,
    *,
    kv_type: str = "f16",
    memory_bytes: int | None = None,
    memory_class: str | None = None,
    bandwidth_gbs: float | None = None,
    context: int | None = None,
) -> FitReport:
    """All figures for one shape; an explicit `bandwidth_gbs` wins over `memory_class`."""
    if context is not None and context <= 0:
        raise FitInputError(f"--context must be a positive number of tokens, got {context}")
    if memory_bytes is not None and memory_bytes <= 0:
        raise FitInputError("--memory-gb must be positive")
    if bandwidth_gbs is not None and (not math.isfinite(bandwidth_gbs) or bandwidth_gbs <= 0):
        raise FitInputError("--bandwidth-gbs must be positive")
    per_element = kv_bytes_per_element(kv_type)
    if bandwidth_gbs is None and memory_class is not None:
        bandwidth_gbs = bandwidth_of(memory_class)
    per_token = kv_bytes_per_token(shape, per_element)
    weights = weights_bytes(shape)
    contexts = contexts_for(shape.native_max_context, context)
    kv_at = {c: math.ceil(per_token * c) for c in contexts}
    totals = None if weights is None else {c: weights + kv for c, kv in kv_at.items()}
    usable = None if memory_bytes is None else usable_memory(memory_bytes)
    fits = None if totals is None or usable is None else {c: t <= usable for c, t in totals.items()}
    longest = None
    if usable is not None and weights is not None:
        longest = max_context(usable, weights, per_token, shape.native_max_context)
    speed = None
    if totals is not None and bandwidth_gbs is not None:
        speed = {c: decode_tokens_per_s(bandwidth_gbs, t) for c, t in totals.items()}
    return FitReport(
        shape=shape,
        kv_type=kv_type,
        kv_bytes_per_element=per_element,
        memory_bytes=memory_bytes,
        memory_class=memory_class,
        bandwidth_gbs=bandwidth_gbs,
        overhead_fraction=OVERHEAD_FRACTION,
        overhead_fixed_bytes=OVERHEAD_FIXED_BYTES,
        usable_memory_bytes=usable,
        context=context,
        headline_context=context if context is not None else contexts[-1],
        contexts=contexts,
        kv_bytes_per_token=per_token,
        weights_bytes=weights,
        kv_bytes_at_context=kv_at,
        total_bytes_at_context=totals,
        fits=fits,
        max_context_that_fits=longest,
        decode_tokens_per_s_estimate=speed,
    )
