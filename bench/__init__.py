"""Benchmarks of batchgen beside anchors (the official SDK, a plain aiohttp script)."""
