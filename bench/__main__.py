"""``python -m bench [--quick] [--only NAME ...]``: see bench/runner.py."""

from bench.runner import main

raise SystemExit(main())
