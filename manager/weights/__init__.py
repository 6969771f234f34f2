"""The weight store: fetches exactly the files a plan chose into the shared Hugging Face cache,
verifies them, adopts files the user already has, and removes what no app uses.

Plain data in (ModelFile lists from the recipe/plan), plain data out (LocalFile lists);
progress goes through the events Reporter. One job per module: `store` alone knows the
on-disk layout; `remote` asks the hub; `fetch` moves bytes; `record` remembers verified
hashes; `verify` checks, lists and cleans; `pull` plans and runs a download; `types` holds
the plain data passed between them.
"""

from __future__ import annotations

from .pull import SOURCE, DownloadPlan, PlannedFile, pinned_in_store, plan_download, pull, specs_of
from .types import GcItem, GcResult, LocalFile, Problem, StoreEntry
from .verify import gc, import_file, list_store, verify, verify_targets

__all__ = [
    "SOURCE",
    "DownloadPlan",
    "GcItem",
    "GcResult",
    "LocalFile",
    "PlannedFile",
    "Problem",
    "StoreEntry",
    "gc",
    "import_file",
    "list_store",
    "pinned_in_store",
    "plan_download",
    "pull",
    "specs_of",
    "verify",
    "verify_targets",
]
