"""`python -m loadtest.bench`: the router benchmark, one command, its own stack, raw results kept.

Starts a real tritonserver (fault-injectable repository generated from build/models/ci), Redis
when installed and the router on free ports; then runs the loadtest CLI for capacity (direct
Triton and router), router vs direct at half the direct capacity, the hand-written baseline
proxy, the straggler with hedging off/on, and a py-spy profile of the router under load. Writes
`summary.json` and, with `--doc`, the Markdown page rendered from it (loadtest/bench/doc.py).
"""
