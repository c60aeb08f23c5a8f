"""The try-on settings a request may carry: the published CatVTON defaults and their limits.

Torch-free, so the gateway and enqueue check requests with the same numbers the weave
pipeline enforces (the event schemas in cloudevents-schemas/ state them too).
"""
from __future__ import annotations

from typing import Final

CATEGORIES: Final[tuple[str, ...]] = ("upper", "lower", "overall")

DEFAULT_STEPS: Final = 50
DEFAULT_GUIDANCE: Final = 2.5
# Named settings a request may ask for instead of numbers (its own steps / guidance win).
# "default" is the published setting; "fast" runs 2.5x fewer denoising steps.
PRESETS: Final[dict[str, dict[str, int | float]]] = {
    "default": {"steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE},
    "fast": {"steps": 20, "guidance": DEFAULT_GUIDANCE},
}
DEFAULT_HEIGHT: Final = 1024
DEFAULT_WIDTH: Final = 768

STEPS_RANGE: Final = (1, 150)
GUIDANCE_RANGE: Final = (0.0, 20.0)
SIZE_MULTIPLE: Final = 64  # height and width: multiples of this ...
MAX_SIDE: Final = 2048  # ... from SIZE_MULTIPLE up to this
