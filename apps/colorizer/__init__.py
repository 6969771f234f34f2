"""The colorizer app: DDColor on spandrel, keeping the photo's own luminance."""

__version__ = "0.1.0"
