"""The Textual face of Darkroom: screens over the same core functions the CLI calls."""
