"""Benchmarks and simulations; they print figures and never gate CI on timing."""
