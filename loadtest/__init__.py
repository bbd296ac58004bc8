"""Open-loop load generator for the policy router, direct Triton and a baseline proxy.

See loadtest/README.md; entry point `python -m loadtest`.
"""
