from __future__ import annotations

# No models yet: see DESIGN.md for what this app will hold.
