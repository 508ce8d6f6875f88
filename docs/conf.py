"""Sphinx configuration of the actsearch documentation (MyST markdown pages).

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (the tests do this with warnings as
errors). The CLI reference is generated from actsearch's own argparse parser (sphinx-argparse) and
the Python API from its docstrings (autodoc), so neither can drift from the code.
"""
from __future__ import annotations

import actsearch

project = "actsearch"
author = "the actsearch authors"
copyright = "the actsearch authors"
release = version = actsearch.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinxarg.ext"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}

html_theme = "alabaster"
html_title = f"actsearch {version}"
html_static_path = ["_static"]
suppress_warnings = ["misc.highlighting_failure"]  # a console block with an apostrophe in its output is still shown, plain
