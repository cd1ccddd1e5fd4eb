"""``python -m benchmarks.campaign`` (or ``python benchmarks/campaign``): see the package docstring."""
import sys
from pathlib import Path

if not __package__:  # run as a folder: its own directory would shadow top-level modules (config, data, …)
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from benchmarks.campaign.cli import main  # noqa: E402

raise SystemExit(main())
