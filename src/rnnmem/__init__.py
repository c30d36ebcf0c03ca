"""rnnmem: recurrent networks and memory, from Reber grammars to Bach chorales.

The package holds all the logic of the pipeline; Snakemake rules only call its CLI (``python -m rnnmem``).
It never imports snakemake.
"""

__version__ = "0.1.0"
