"""The app kit: what every bundled Darkroom app shares (settings, server, jobs, outputs)."""

__version__ = "0.1.0"
