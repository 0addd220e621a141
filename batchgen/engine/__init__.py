"""The run engine: the stages, one item's life on the API, and the topology."""
