"""Where an agent process runs: sandbox backends (bwrap, none), one shape, capabilities as typed data.

Invariants: a backend only rewrites the agent's argv (the runner still spawns it, under runner/keeper.py, with
the environment the adapter built); a new backend is one module plus one entry in `registry.BACKENDS`.
"""
