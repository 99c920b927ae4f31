"""The synthetic Cell Painting screen (docs/synthetic-screen.md): planted real biology, strong
hierarchical batch effects, written in the real datasets' file layouts."""

from cellbench.data.synthetic.config import (
    PRESETS,
    SIMULATOR_VERSION,
    SIZES,
    ScreenConfig,
    make_config,
)
from cellbench.data.synthetic.generate import ensure_screen, generate_screen

__all__ = [
    "PRESETS",
    "SIMULATOR_VERSION",
    "SIZES",
    "ScreenConfig",
    "ensure_screen",
    "generate_screen",
    "make_config",
]
