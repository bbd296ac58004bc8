"""Closed-loop evaluation through the real serving stack (Meta-World robots -> router -> Triton).

`python -m evaluation run --panel ci --episodes 20 --out results/eval/<stamp>` writes one result
folder: matrix, router confusion, failure attribution, MCAP traces, plots and report.md.
"""
