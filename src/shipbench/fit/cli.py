"""What `shipbench fit` does between parsing options and printing: source + overrides -> FitReport -> table.

Invariants: raises only `FitInputError` for user mistakes (the top-level CLI turns it into exit 2);
the table and the summary line show exactly the report's figures, in binary units (KiB/MiB/GiB).
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from shipbench.fit.compute import GIB, MIB, build_report
from shipbench.fit.model import FitInputError, FitReport
from shipbench.fit.sources import load_source, parse_count, with_overrides


def fit_report(
    source: Path | None,
    *,
    layers: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    kv_type: str = "f16",
    kv_bytes: float | None = None,
    params: str | None = None,
    weight_bits: float | None = None,
    context: int | None = None,
    memory_gb: float | None = None,
    bandwidth_gbs: float | None = None,
    memory_class: str | None = None,
) -> FitReport:
    """The report for a source (or none) with explicit numbers over it; --kv-bytes wins over --kv-type."""
    shape = load_source(source) if source is not None else None
    shape = with_overrides(
        shape,
        layers=layers,
        kv_heads=kv_heads,
        head_dim=head_dim,
        params=parse_count(params) if params is not None else None,
        weight_bits=weight_bits,
    )
    if kv_bytes is not None:
        if not kv_bytes > 0 or kv_bytes == float("inf"):
            raise FitInputError(f"--kv-bytes must be a positive number, got {kv_bytes}")
        kv_type = repr(kv_bytes)
    if memory_gb is not None and (not memory_gb > 0 or memory_gb == float("inf")):
        raise FitInputError(f"--memory-gb must be a positive number, got {memory_gb}")
    memory_bytes = None if memory_gb is None else round(memory_gb * GIB)
    return build_report(
        shape,
        kv_type=kv_type,
        memory_bytes=memory_bytes,
        memory_class=memory_class,
        bandwidth_gbs=bandwidth_gbs,
        context=context,
    )


def human_bytes(n: float) -> str:
    """Binary units with two decimals: 327680 -> '320.00 KiB', 2**35 -> '32.00 GiB'."""
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def format_count(n: int) -> str:
    """A parameter count the way models are named: 70.55B, 134.5M."""
    return f"{n / 1e9:.2f}B" if n >= 10**9 else f"{n / 1e6:.1f}M"


def context_label(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else f"{tokens:,}"


def render_table(report: FitReport) -> Table:
    """One row per context size: KV cache, weights + KV, fits (when --memory-gb), decode tok/s (when bandwidth)."""
    shape = report.shape
    dims = f"{shape.layers} layers, {shape.kv_heads} KV heads x {shape.head_dim}"
    title = f"{shape.name or 'model'}: {dims}, KV cache {report.kv_type}"
    table = Table(title=title, title_justify="left")
    table.add_column("context", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("KV cache", justify="right")
    table.add_column("weights + KV", justify="right")
    table.add_column("fits", justify="center")
    table.add_column("decode tok/s", justify="right")
    for c in report.contexts:
        total = report.total_bytes_at_context
        fits = report.fits
        speed = report.decode_tokens_per_s_estimate
        label = context_label(c)
        if c == shape.native_max_context:
            label += " (native)"
        elif shape.native_max_context is not None and c > shape.native_max_context:
            label += " (> native)"
        table.add_row(
            label,
            f"{c:,}",
            human_bytes(report.kv_bytes_at_context[c]),
            "-" if total is None else human_bytes(total[c]),
            "-" if fits is None else ("yes" if fits[c] else "no"),
            "-" if speed is None else f"{speed[c]:.1f}",
        )
    return table


def summary_line(report: FitReport) -> str:
    """The figures that matter in one sentence; says what to pass for the ones it could not compute."""
    shape = report.shape
    per_token = report.kv_bytes_per_token
    parts = [f"KV {per_token / MIB:.4g} MiB/token ({per_token:,.0f} bytes)"]
    if report.weights_bytes is None:
        parts.append("weights unknown (pass --params)")
    else:
        how = "from the file" if shape.weights_bytes is not None else f"{shape.weight_bits:g} bits/weight"
        est = " estimated" if shape.params_estimated else ""
        count = f"{format_count(shape.params)}{est} params, " if shape.params is not None else ""
        parts.append(f"weights {human_bytes(report.weights_bytes)} ({count}{how})")
    if report.usable_memory_bytes is not None and report.memory_bytes is not None:
        longest = report.max_context_that_fits
        memory = f"{human_bytes(report.memory_bytes)} ({human_bytes(report.usable_memory_bytes)} usable)"
        if longest == 0:
            parts.append(f"the weights alone do not fit in {memory}")
        elif longest is not None:
            capped = " (the native max)" if longest == shape.native_max_context else ""
            parts.append(f"fits up to {longest:,} tokens{capped} in {memory}")
    speed = report.decode_tokens_per_s_estimate
    if speed is not None:
        where = report.memory_class or f"{report.bandwidth_gbs:g} GB/s"
        parts.append(
            f"decode <= {speed[report.headline_context]:.1f} tok/s at {report.headline_context:,} tokens on {where}"
        )
    elif report.weights_bytes is not None:
        parts.append("pass --memory-class or --bandwidth-gbs for a decode estimate")
    return "; ".join(parts)
