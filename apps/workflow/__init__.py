"""The workflow runner: chains the other apps' task APIs over whole folders, resumably."""

__version__ = "0.1.0"
