"""AquaPose: per-fish masks from multi-camera aquarium video."""

__version__ = "0.1.0"
