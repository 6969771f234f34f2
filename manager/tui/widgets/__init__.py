"""Widgets the screens share: app cards, transfer progress."""
