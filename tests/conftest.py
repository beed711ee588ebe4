"""Shared fixtures. Tests never load third-party plugins installed in the environment unless a
test asks for them: the allow-list is set to empty before any plugin is loaded.
"""

from __future__ import annotations

import os

os.environ["DSTBENCH_LOAD_PLUGINS"] = ""
os.environ.pop("DSTBENCH_DISABLE_PLUGINS", None)
os.environ.pop("DSTBENCH_PLUGIN_MODULES", None)

from collections.abc import Iterator

import pytest
import torch

from dstbench.plugins import LoadedPlugins, get_plugins, load_plugins, set_plugins

# Tiny models gain nothing from intra-op threads, and `pytest -n auto` already runs one process
# per core: more threads would only oversubscribe the cores.
torch.set_num_threads(1)


@pytest.fixture
def registry():
    """The registry of the built-in plugins."""
    return get_plugins().registry


@pytest.fixture
def use_plugins() -> Iterator:
    """Install throw-away plugins process-wide for one test: ``use_plugins(("name", obj))``."""
    previous = get_plugins()

    def install(*extra: tuple[str, object]) -> LoadedPlugins:
        loaded = load_plugins(
            extra=extra, env={"DSTBENCH_LOAD_PLUGINS": ",".join(n for n, _ in extra)}
        )
        set_plugins(loaded)
        return loaded

    yield install
    set_plugins(previous)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator."""
    return torch.Generator().manual_seed(0)
