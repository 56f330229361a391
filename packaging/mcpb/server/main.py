"""Entry point of the onepin-mcp MCP Bundle: serve MCP on stdio for the desktop app that
installed the bundle.

The package itself travels in the bundle, beside this file (`server/onepin_mcp/`); its
dependencies are declared in the bundle's `pyproject.toml`, which the app's uv installs. The
settings arrive as environment variables, mapped from the bundle's user settings in
`manifest.json`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Python puts a script's own directory first on sys.path; said again here so that the bundled
# package is the one imported however the host starts this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from onepin_mcp.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
