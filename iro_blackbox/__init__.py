"""iro-bb: align a frozen language model with value-guided chunk-level search (IRO)."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import IroError  # noqa: E402

__all__ = ["IroError", "__version__"]
