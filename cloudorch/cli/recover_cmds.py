"""recover commands (registered on the shared app by import from `app.py`)."""

from __future__ import annotations
