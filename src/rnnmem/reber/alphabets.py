"""The symbols of each grammar, in their one-hot order (torch- and numpy-free: the Snakefile reads the sizes)."""

REBER_ALPHABET = "BTPSXVE"  # Reber and embedded Reber
TOY_ALPHABET = "⊙01⊗"  # the §1.3 warm-up language: begin marker, 0, 1, end marker

ALPHABETS: dict[str, str] = {"reber": REBER_ALPHABET, "embedded_reber": REBER_ALPHABET, "toy": TOY_ALPHABET}
"""Alphabet of each grammar of :data:`rnnmem.reber.grammars.GRAMMARS`, by name."""
