"""What lands in OUT: image files and results.jsonl, written atomically."""
