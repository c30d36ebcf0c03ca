"""Monophonic chorale melodies against the field's yardstick (issue 14, part 3).

Pearce (2005) and IDyOM measure next-pitch cross-entropy in bits/note on "Dataset 2": the soprano melodies of the
185 chorales BWV 253–438, 10-fold cross-validation. :mod:`corpus` reads those melodies from music21's bundled
corpus, :mod:`folds` splits them, :mod:`ppm` is the pitch-only variable-order Markov baseline (IDyOM's PPM*,
long- and short-term models) and :mod:`benchmark` runs it over the folds.
"""
