"""Loading dataset pickles without running code: an unpickler that admits only data.

A pickle can name any importable callable and have it called while loading (``os.system``,
``builtins.exec``...), so a crafted file in a data root would run code under the user's
account. Dataset pickles (CIFAR's "python version") hold only builtin containers (dicts,
lists, bytes, strings, numbers) and numpy arrays, so :func:`load_data_pickle` admits those and
the few numpy callables that rebuild an array, and refuses everything else before calling it.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

#: ``(module, name)`` a data pickle may reference: what pickling a numpy array writes
#: (numpy 1.x and 2.x module names, protocols 2 to 5) and ``_codecs.encode``, with which
#: Python 3's protocol 2 spells a bytes object.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle references a callable that is not a data constructor."""


class _DataUnpickler(pickle.Unpickler):
    """An unpickler whose globals are limited to :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``module.name`` only when it is a data constructor; refuse anything else."""
        if (module, name) not in ALLOWED_GLOBALS:
            msg = f"refusing to load {module}.{name}: a data pickle holds no code"
            raise RefusedGlobal(msg)
        return super().find_class(module, name)


def load_data_pickle(handle: IO[bytes], *, encoding: str = "bytes") -> Any:
    """Unpickle ``handle``, admitting only builtin containers and numpy arrays.

    :param encoding: how Python 2 ``str`` objects are decoded (``"bytes"``: kept as bytes,
        which is how CIFAR's keys come back).
    :raises RefusedGlobal: when the pickle references anything else.
    """
    return _DataUnpickler(handle, encoding=encoding).load()
