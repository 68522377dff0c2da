"""Ruby source analysis: parsing, gem API indexes, call verification."""
