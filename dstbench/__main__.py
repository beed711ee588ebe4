"""``python -m dstbench``."""

from __future__ import annotations

import sys

from dstbench.cli import main

sys.exit(main())
