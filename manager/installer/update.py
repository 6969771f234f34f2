"""update: what an update would change, and whether there is anything to do."""

from __future__ import annotations

from fnmatch import fnmatch

from .. import appsource, catalogue, envs, suggest
from .. import state as state_mod
from ..config import Settings
from ..errors import DarkroomError
from ..hardware import Hardware
from ..home import Home
from ..planner import Choices, plan
from ..recipe import (
    RecipeError,
)
from ..weights.store import RepoStore
from .install import env_spec
from .preview import Preview, manifest_of, preview


def update_preview(home: Home, settings: Settings, app: str, hw: Hardware) -> Preview:
    """Re-plan an installed app with the choices it was installed with (recipe may be newer)."""
    installed = state_mod.load(home).apps.get(app)
    if installed is None:
        raise suggest.not_installed(home, app)
    choices = Choices(
        variants=dict(installed.variants),
        models=tuple(installed.chosen_models) if installed.chosen_models else None,
    )
    if installed.recipe_source == "bundled":
        pv = preview(home, settings, app, hw, choices)
    else:
        target = installed.recipe_source
        try:
            pv = preview(home, settings, target, hw, choices)
        except (RecipeError, DarkroomError):
            recipe = catalogue.installed_recipe(installed, app)
            p = plan(recipe, hw, choices)
            pv = Preview(
                recipe,
                p,
                installed.recipe_source,
                installed.recipe_text,
                manifest_of(recipe, installed.recipe_source, p, settings, home),
                [],
                choices,
            )
    # Licences already accepted need no second yes.
    pv.licences = [lic for lic in pv.licences if lic.model not in installed.accepted_licences]
    return pv


def up_to_date(home: Home, pv: Preview) -> bool:
    """True when updating would change nothing: the same recipe and version, the same models and
    variants, the same environment, and every model file still in the store.

    (A git source that follows a branch is judged by its recipe alone: no network is asked.)
    """
    installed = state_mod.load(home).apps.get(pv.recipe.id)
    if (
        installed is None
        or installed.version != pv.recipe.version
        or installed.backend != pv.plan.backend
    ):
        return False
    if not pv.bundled and installed.recipe_text != pv.recipe_text:
        return False
    planned = sorted((m.model, m.variant, m.precision, m.offload) for m in pv.plan.models)
    if planned != sorted((m.model, m.variant, m.precision, m.offload) for m in installed.models):
        return False
    if not _files_installed(pv, installed):
        return False
    if envs.info(home, pv.recipe.id) is None or installed.env_hash is None:
        return False
    try:
        source = appsource.current(home, pv.recipe)
    except DarkroomError:
        return False
    if env_spec(pv.recipe, pv.plan, source).fingerprint() != installed.env_hash:
        return False
    return all(
        RepoStore(home.models, f.repo, f.repo_type).pointer(f.revision, f.path).exists()
        for m in installed.models
        for f in m.files
    )


def _files_installed(pv: Preview, installed: state_mod.InstalledApp) -> bool:
    """Every file the plan names is among the installed ones (a glob: at least one match).

    A bundled recipe can gain a file without a new version (FLUX.1 Depth gained its depth
    estimator): the same models and variants then still need the new file fetched."""
    have = {(f.repo_type, f.repo, f.path) for m in installed.models for f in m.files}
    for m in pv.plan.models:
        for f in m.files:
            if f.is_pattern:
                if not any(
                    t == f.repo_type and r == f.repo and fnmatch(p, f.path) for t, r, p in have
                ):
                    return False
            elif (f.repo_type, f.repo, f.path) not in have:
                return False
    return True
