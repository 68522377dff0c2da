"""The metering proxy: agents' only LLM endpoint; meters, prices, budgets and forwards every call.

Invariants: see server.py (leases, one record per call, no real key anywhere) and usage.py (how each
wire's usage is normalised so that input + cache_read + cache_write is the whole prompt).
"""

from shipbench.proxy.retry import RetryPolicy
from shipbench.proxy.server import MeteringProxy
from shipbench.proxy.types import Lease, UpstreamTarget

__all__ = ["Lease", "MeteringProxy", "RetryPolicy", "UpstreamTarget"]
