"""Running the example plugins' tests from the repository root (``pytest plugins``): each
plugin's own pyproject.toml adds ``-p dstbench.testing`` when run from its directory; here the
same fixtures are enabled once for all of them.
"""

from __future__ import annotations

pytest_plugins = ["dstbench.testing"]
