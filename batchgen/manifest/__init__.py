"""Manifests: read YAML/JSONL (``sources``), expand and validate (``reader``) into work
items (``item``), with stable ids (``ids``, ``idset``) and the model schemas
(``schema``, shared with the local server)."""
