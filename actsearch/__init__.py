"""actsearch: automatic search for activation functions (Ramachandran, Zoph & Le, 2017)."""
from __future__ import annotations

from .activations import get_activation, make_activation
from .errors import ActsearchError

__version__ = "0.1.0"

__all__ = ["get_activation", "make_activation", "ActsearchError", "__version__"]
