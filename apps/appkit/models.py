"""The shape of DARKROOM_MODELS, for the apps: which variant of each model to run, and where
its files lie. The shape itself lives in appkit/protocol.py, the one module the manager
(which writes it) and the apps (which read it) share; this name keeps apps' imports short."""

from __future__ import annotations

from .protocol import OFFLOADS, LocalFile, ModelChoice, ModelsError, ModelsSpec

__all__ = ["OFFLOADS", "LocalFile", "ModelChoice", "ModelsError", "ModelsSpec"]
