"""The inversion modes a photo can be inverted with, named once for the engine (which
implements them, engine/inversion.py), the worker's settings and ``oneword edit --mode``
(standard library only, so the command line can offer them without loading the engine)."""

from __future__ import annotations

INVERSION_MODES = ("null-text", "direct", "fast", "ddim")
