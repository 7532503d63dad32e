"""Encoder effort levels: named latent-optimisation step counts (``dcae compress --effort N``).

Kept free of PyTorch so that the command line can describe the levels without importing it.
Level 0 is the plain encoder; the levels above follow the measured gain per step
(docs/benchmarks.md, "Encoder effort").
"""

EFFORT_STEPS = (0, 5, 10, 20)
