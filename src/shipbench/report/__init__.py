"""`shipbench report`: trial dirs -> rows (load) -> statistics (stats) -> leaderboard -> Markdown/JSON/HTML.

Invariant: data flows one way; the report never writes into a results dir.
"""
