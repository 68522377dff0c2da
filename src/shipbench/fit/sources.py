"""Fill a `ModelShape` from a GGUF file, a Hugging Face config.json, or explicit numbers.

Invariants: a GGUF file is read through a read-only memory map and only its metadata and tensor index are
parsed (no tensor data is touched); explicit numbers always win over the source's; every unreadable or
incomplete input raises `FitInputError` with one line naming the file and the missing key.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from shipbench.fit.model import FitInputError, ModelShape

GGUF_MAGIC = b"GGUF"
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbt]?)\s*$", re.IGNORECASE)
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}


def parse_count(text: str, what: str = "--params") -> int:
    """A positive count written as 70000000000, 70e9, 70B, 135M or 1.5T."""
    match = _COUNT.match(text)
    if match is None:
        raise FitInputError(f"{what} must be a positive count such as 70B, 135M or 7e9, got {text!r}")
    value = round(float(match.group(1)) * _SUFFIX[match.group(2).lower()])
    if value <= 0:
        raise FitInputError(f"{what} must be positive, got {text!r}")
    return value


def load_source(path: Path) -> ModelShape:
    """A .gguf file (recognised by its magic), or a config.json (or a directory holding one)."""
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FitInputError(f"{path}: no such file")
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise FitInputError(f"{path}: cannot read ({exc.strerror})") from None
    if head == GGUF_MAGIC:
        return read_gguf(path)
    if path.suffix.lower() == ".gguf":
        raise FitInputError(f"{path}: not a GGUF file (no GGUF magic)")
    if path.suffix.lower() == ".json" or head.lstrip()[:1] == b"{":
        return read_hf_config(path)
    raise FitInputError(f"{path}: neither a GGUF file nor a Hugging Face config.json")


# --- GGUF -----------------------------------------------------------------------------------------------


def _field(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    return None if field is None else field.contents()


def _gguf_int(reader: Any, key: str, path: Path, *, required: bool) -> int | None:
    value = _field(reader, key)
    if isinstance(value, list):
        # per-layer values (a few architectures vary heads by layer): the largest bounds the cache from above
        value = max(value, default=None)
    if value is None:
        if required:
            raise FitInputError(f"{path}: GGUF metadata has no {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise FitInputError(f"{path}: GGUF {key} is not a positive integer ({value!r})")
    return value


def _file_type_name(value: Any) -> str | None:
    from gguf import LlamaFileType

    if not isinstance(value, int):
        return None
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return f"file_type {value}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def read_gguf(path: Path) -> ModelShape:
    """Shape, native context, quantization and weight size from a GGUF file's header."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path, "r")
    except Exception as exc:  # a third-party parser over an untrusted file: any failure means "unreadable"
        raise FitInputError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    arch = _field(reader, "general.architecture")
    if not isinstance(arch, str) or not arch:
        raise FitInputError(f"{path}: GGUF metadata has no general.architecture")
    layers = _gguf_int(reader, f"{arch}.block_count", path, required=True)
    heads = _gguf_int(reader, f"{arch}.attention.head_count", path, required=True)
    kv_heads = _gguf_int(reader, f"{arch}.attention.head_count_kv", path, required=False) or heads
    key_dim = _gguf_int(reader, f"{arch}.attention.key_length", path, required=False)
    value_dim = _gguf_int(reader, f"{arch}.attention.value_length", path, required=False)
    hidden = _gguf_int(reader, f"{arch}.embedding_length", path, required=key_dim is None)
    if key_dim is None:
        assert hidden is not None and heads is not None
        if hidden % heads:
            raise FitInputError(f"{path}: {arch}.embedding_length {hidden} is not a multiple of head_count {heads}")
        key_dim = hidden // heads
    weights = sum(int(t.n_bytes) for t in reader.tensors)
    params = sum(int(t.n_elements) for t in reader.tensors)
    name = _field(reader, "general.name")
    return ModelShape(
        name=name if isinstance(name, str) else path.stem,
        source=f"gguf:{path}",
        architecture=arch,
        layers=layers,
        kv_heads=kv_heads,
        attention_heads=heads,
        head_dim=key_dim,
        value_head_dim=value_dim if value_dim not in (None, key_dim) else None,
        hidden_size=hidden,
        params=params or None,
        weight_bits=weights * 8 / params if params and weights else None,
        weights_bytes=weights or None,
        native_max_context=_gguf_int(reader, f"{arch}.context_length", path, required=False),
        quantization=_file_type_name(_field(reader, "general.file_type")),
    )


# --- Hugging Face config.json ----------------------------------------------------------------------------

_MOE_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_DTYPE_BITS = {"float32": 32.0, "float16": 16.0, "bfloat16": 16.0}


def _config_int(config: dict[str, Any], key: str, path: Path, *, required: bool) -> int | None:
    value = config.get(key)
    if value is None:
        if required:
            raise FitInputError(f"{path}: config.json has no {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise FitInputError(f"{path}: config.json {key} is not a positive integer ({value!r})")
    return value


def estimate_dense_params(config: dict[str, Any], heads: int, kv_heads: int, head_dim: int) -> int | None:
    """Parameter count of a standard dense decoder (Llama/Qwen/Mistral layout), or None when it is not one.

    Per layer: q and o projections hidden x (heads x head_dim) each, k and v hidden x (kv_heads x head_dim)
    each, a gated MLP 3 x hidden x intermediate, two norms of hidden; plus vocab x hidden for the embeddings,
    again for the output head unless tie_word_embeddings, and a final norm. Biases are ignored (<0.1%).
    Mixture-of-experts configs return None: their total differs and decode streams only the active experts.
    """
    if any(isinstance(config.get(key), int) and config[key] > 1 for key in _MOE_KEYS):
        return None
    layers, hidden = config.get("num_hidden_layers"), config.get("hidden_size")
    vocab, inter = config.get("vocab_size"), config.get("intermediate_size")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (layers, hidden, vocab, inter)):
        return None
    assert isinstance(layers, int) and isinstance(hidden, int) and isinstance(vocab, int) and isinstance(inter, int)
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    per_layer = attention + 3 * hidden * inter + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") is True else 2)
    return layers * per_layer + embeddings + hidden


def read_hf_config(path: Path) -> ModelShape:
    """Shape and native context from a config.json; params estimated for dense models (see above)."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FitInputError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(loaded, dict):
        raise FitInputError(f"{path}: config.json is not a JSON object")
    config: dict[str, Any] = loaded
    text_config = config.get("text_config")
    if "num_hidden_layers" not in config and isinstance(text_config, dict):
        config = {**config, **text_config}  # multimodal configs nest the language model's shape
    layers = _config_int(config, "num_hidden_layers", path, required=True)
    heads = _config_int(config, "num_attention_heads", path, required=True)
    assert layers is not None and heads is not None
    kv_heads = _config_int(config, "num_key_value_heads", path, required=False) or heads
    head_dim = _config_int(config, "head_dim", path, required=False)
    hidden = _config_int(config, "hidden_size", path, required=head_dim is None)
    if head_dim is None:
        assert hidden is not None
        if hidden % heads:
            raise FitInputError(f"{path}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
        head_dim = hidden // heads
    params = estimate_dense_params(config, heads, kv_heads, head_dim)
    dtype = config.get("torch_dtype", config.get("dtype"))
    architectures = config.get("architectures")
    name = config.get("_name_or_path") or (architectures[0] if isinstance(architectures, list) else None)
    return ModelShape(
        name=name if isinstance(name, str) and name else path.parent.name or None,
        source=f"config.json:{path}",
        architecture=config.get("model_type") if isinstance(config.get("model_type"), str) else None,
        layers=layers,
        kv_heads=kv_heads,
        attention_heads=heads,
        head_dim=head_dim,
        hidden_size=hidden,
        params=params,
        params_estimated=params is not None,
        weight_bits=_DTYPE_BITS.get(dtype, 16.0) if isinstance(dtype, str) else 16.0,
        native_max_context=_config_int(config, "max_position_embeddings", path, required=False),
    )


# --- explicit numbers ------------------------------------------------------------------------------------


def _positive(value: int | None, flag: str) -> int | None:
    if value is not None and value <= 0:
        raise FitInputError(f"{flag} must be a positive integer, got {value}")
    return value


def with_overrides(
    shape: ModelShape | None,
    *,
    layers: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    params: int | None = None,
    weight_bits: float | None = None,
) -> ModelShape:
    """The source's shape with every explicit number put over it, or a shape from explicit numbers alone.

    New --params or --weight-bits drop a size read from a file: the weights become params x bits / 8
    (16 bits when no width is known)."""
    _positive(layers, "--layers")
    _positive(kv_heads, "--kv-heads")
    _positive(head_dim, "--head-dim")
    _positive(params, "--params")
    if weight_bits is not None and (not math.isfinite(weight_bits) or weight_bits <= 0):
        raise FitInputError(f"--weight-bits must be a positive number, got {weight_bits}")
    if shape is None:
        missing = [
            flag for flag, v in (("--layers", layers), ("--kv-heads", kv_heads), ("--head-dim", head_dim)) if v is None
        ]
        if missing:
            raise FitInputError(f"no SOURCE (a .gguf or config.json) and not enough numbers: pass {', '.join(missing)}")
        assert layers is not None and kv_heads is not None and head_dim is not None
        shape = ModelShape(layers=layers, kv_heads=kv_heads, head_dim=head_dim)
    update: dict[str, Any] = {}
    for key, value in (("layers", layers), ("kv_heads", kv_heads), ("head_dim", head_dim)):
        if value is not None:
            update[key] = value
    if head_dim is not None:
        update["value_head_dim"] = None
    if params is not None or weight_bits is not None:
        update["weights_bytes"] = None
        update["params"] = params if params is not None else shape.params
        update["params_estimated"] = params is None and shape.params_estimated
        update["weight_bits"] = weight_bits if weight_bits is not None else shape.weight_bits or 16.0
    if shape.weight_bits is None and "weight_bits" not in update:
        update["weight_bits"] = 16.0
    return shape.model_copy(update=update)
