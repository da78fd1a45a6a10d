"""`python -m exporter` is the same as the `resilience-exporter` console script."""
from exporter.cli import main

raise SystemExit(main())
