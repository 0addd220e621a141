"""The checkpoint: SQLite in ``OUT/.batchgen/`` (``db``) and the lock on OUT (``lock``)."""
