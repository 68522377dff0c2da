"""`shipbench fit`: model shape (sources) -> KV cache, weights, fit and decode-speed figures (compute) -> report.

Invariants: pure arithmetic over a `ModelShape`; nothing here loads tensor data or touches the network;
every user mistake is a `FitInputError` with a one-line message.
"""
