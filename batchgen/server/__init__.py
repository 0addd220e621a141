"""The local Segmind-compatible v2 server: test double and embedded default."""
