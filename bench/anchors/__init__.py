"""Anchors: how people batch Segmind today, each a small CLI run as its own process.

Every anchor reads a JSONL manifest (one object per line, ``id`` and parameters), writes
``OUT/images/<id>.png`` and ``OUT/report.json``: ``delivered``, ``lost``, ``errors``.
"""
