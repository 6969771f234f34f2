"""Darkroom: a one-click installer and app manager for local AI image tools."""

__version__ = "0.1.0"
