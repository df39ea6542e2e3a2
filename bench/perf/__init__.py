"""The performance harness: one command that starts the platform as in production, seeds a
realistic catalogue, drives the source's endpoint mix with wrk and reports against the targets.

    .venv/bin/python -m bench.perf [--seconds 60] [--quick] [--update-docs]

docs/performance.md explains what it measures and keeps the figures of the last full run.
"""
