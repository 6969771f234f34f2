"""install / update / rollback / remove: the plan, the env builder and the weight store tied
into the actions a person uses, each safe to interrupt. One job per module: `preview` says
what will happen (the consent), `journal` makes every action undoable after a crash, and
`install`, `update`, `rollback` and `remove` are the verbs.
"""

from __future__ import annotations

from .install import build_and_pull, env_spec, install, render_templates
from .journal import SOURCE, recover
from .preview import Licence, Manifest, Preview, manifest_of, preview
from .remove import Removed, data_folder, remove
from .rollback import rollback
from .update import up_to_date, update_preview

__all__ = [
    "SOURCE",
    "Licence",
    "Manifest",
    "Preview",
    "Removed",
    "build_and_pull",
    "data_folder",
    "env_spec",
    "install",
    "manifest_of",
    "preview",
    "recover",
    "remove",
    "render_templates",
    "rollback",
    "up_to_date",
    "update_preview",
]
