"""Benchmarks: they print numbers; they are not tests."""
