"""The restorer app: old photos made whole (scratches, faces, upscaling) on spandrel."""

__version__ = "0.1.0"
