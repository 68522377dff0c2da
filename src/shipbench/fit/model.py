"""Persisted shapes of `shipbench fit`: the model's `ModelShape` and the computed `FitReport`.

Invariants: every count is a positive integer, byte figures are integers in bytes (binary units only when
displayed); a figure that cannot be known from the inputs is None, never a guess passed off as a reading.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveInt


class FitInputError(ValueError):
    """A user mistake (missing file, unreadable source, missing or negative number): one line, exit 2."""


class ModelShape(BaseModel):
    """What the KV cache and weights depend on; `source` says where the numbers came from."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    source: str = "explicit"
    architecture: str | None = None
    layers: PositiveInt
    kv_heads: PositiveInt
    attention_heads: PositiveInt | None = None
    head_dim: PositiveInt
    value_head_dim: PositiveInt | None = Field(default=None, description="None: same as head_dim")
    hidden_size: PositiveInt | None = None
    params: PositiveInt | None = None
    params_estimated: bool = False
    weight_bits: float | None = Field(default=None, gt=0)
    weights_bytes: PositiveInt | None = None
    native_max_context: PositiveInt | None = None
    quantization: str | None = None


class FitReport(BaseModel):
    """The figures for one model on one machine; dicts are keyed by context length in tokens."""

    model_config = ConfigDict(extra="forbid")

    shape: ModelShape
    kv_type: str
    kv_bytes_per_element: float
    memory_bytes: int | None
    memory_class: str | None
    bandwidth_gbs: float | None
    overhead_fraction: float
    overhead_fixed_bytes: int
    usable_memory_bytes: int | None
    context: int | None = Field(description="the --context asked for, if any")
    headline_context: int
    contexts: list[int]
    kv_bytes_per_token: float
    weights_bytes: int | None
    kv_bytes_at_context: dict[int, int]
    total_bytes_at_context: dict[int, int] | None
    fits: dict[int, bool] | None
    max_context_that_fits: int | None
    decode_tokens_per_s_estimate: dict[int, float] | None
