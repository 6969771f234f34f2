"""What an install will do, shown before it starts: the plan, the manifest of what will be
fetched and run (sources, packages, hosts), and the licences to accept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .. import bundled, catalogue, envs, uvtool
from ..config import Settings
from ..hardware import Hardware
from ..home import Home
from ..planner import Choices, Plan, plan
from ..recipe import (
    Recipe,
)
from ..weights.remote import endpoint_of


@dataclass
class Licence:
    model: str
    name: str
    licence: str
    url: str | None
    commercial: bool
    gated: bool

    def sentence(self) -> str:
        parts = []
        if not self.commercial:
            parts.append(f"licensed for non-commercial use only ({self.licence})")
        if self.gated:
            parts.append(
                "gated on Hugging Face: you must accept its terms on the model page and "
                "set a token (`darkroom config set hf_token ...`)"
            )
        return f"{self.name} is " + " and ".join(parts) + (f": {self.url}" if self.url else ".")


@dataclass
class Manifest:
    """What a recipe that is not bundled would do, shown before anything runs: every command,
    environment variable, package, package source, download and file it writes."""

    origin: str  # "bundled", or the file / URL the recipe came from
    source: str
    commands: list[list[str]]
    packages: list[str]
    downloads: list[str]
    ports: list[int]
    templates: list[str]
    env: dict[str, str] = field(default_factory=dict)
    backend_args: dict[str, list[str]] = field(default_factory=dict)
    package_sources: list[str] = field(default_factory=list)
    template_contents: dict[str, str] = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)

    @property
    def heading(self) -> str:
        """A bundled recipe is Darkroom's own; only the code it fetches comes from elsewhere."""
        if self.origin == "bundled":
            return "Darkroom's recipe fetches this app's code from its authors. It will:"
        return "This recipe is not part of Darkroom. It will:"

    def lines(self) -> list[str]:
        origin = "Darkroom (a bundled recipe)" if self.origin == "bundled" else self.origin
        out = [f"Recipe from: {origin}", f"Code from:   {self.source}"]
        out += [f"Runs:        {' '.join(cmd)}" for cmd in self.commands]
        out += [f"  with env:  {key}={value}" for key, value in self.env.items()]
        out += [
            f"  on {backend}:{' ' * max(1, 6 - len(backend))}adds {' '.join(args)}"
            for backend, args in self.backend_args.items()
        ]
        if self.needs:
            out.append(f"Starts too:  {', '.join(self.needs)}")
        out.append(f"Installs:    {', '.join(self.packages) or 'nothing extra'}")
        out += [f"  from:      {src}" for src in self.package_sources]
        out += [f"Downloads:   {d}" for d in self.downloads] or ["Downloads:   no model files"]
        out.append(
            f"Listens on:  port {', '.join(map(str, self.ports))} (127.0.0.1 unless you share it)"
        )
        for dest in self.templates:
            out.append(f"Writes:      {dest}")
            out += [f"  | {line}" for line in self.template_contents.get(dest, "").splitlines()]
        return out


@dataclass
class Preview:
    recipe: Recipe
    plan: Plan
    origin: str  # "bundled", or the file / URL the recipe came from
    recipe_text: str | None
    manifest: Manifest | None
    licences: list[Licence]
    choices: Choices = field(default_factory=Choices)

    @property
    def bundled(self) -> bool:
        return self.origin == "bundled"


def manifest_of(
    recipe: Recipe,
    origin: str,
    p: Plan,
    settings: Settings | None = None,
    home: Home | None = None,
) -> Manifest:
    """What the recipe will do, in the words and paths it will use: with `home`, placeholders
    are shown filled ({models_dir} as the real folder), as the app will get them."""
    values = placeholder_values(home, settings or Settings(), recipe) if home else {}

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    source = (
        f"git {recipe.source.git} at {recipe.source.revision}"
        if recipe.source.git
        else f"Darkroom's bundled {recipe.source.bundled}"
    )
    source += "".join(f"; git {e.git} at {e.commit[:12]} into {e.dest}" for e in recipe.extra_repos)
    host = (
        urlsplit(endpoint_of(settings.hf_endpoint if settings else None)).netloc or "huggingface.co"
    )
    downloads = [
        f"{f.repo}/{f.path} at {f.revision} from {host} ({f.size / 1e9:.2f} GB)"
        for m in p.models
        for f in m.files
    ]
    command = [*recipe.launch.command, *recipe.launch.backend_args.get(p.backend, [])]
    return Manifest(
        origin=origin,
        source=source,
        commands=[[fill(a) for a in command]],
        packages=[*p.packages, *p.torch_packages, *recipe.requirements],
        downloads=downloads,
        ports=[recipe.launch.port],
        templates=[t.dest for t in recipe.templates],
        env={k: fill(v) for k, v in recipe.launch.env.items()},
        backend_args={b: [fill(x) for x in a] for b, a in recipe.launch.backend_args.items()},
        package_sources=_package_sources(settings, p.torch_backend if p.torch_packages else None),
        template_contents={t.dest: fill(t.content) for t in recipe.templates},
        needs=list(recipe.needs),
    )


def placeholder_values(
    home: Home, settings: Settings, recipe: Recipe, app_dir: Path | None = None
) -> dict[str, str]:
    """What each placeholder becomes for this app: in templates at install, and in the
    manifest shown before it. {port} is the recipe's (a start may move it)."""
    if app_dir is None:
        app_dir = (
            home.app_dir(recipe.id)
            if recipe.source.git
            else bundled.apps_dir() / (recipe.source.bundled or "")
        )
    return {
        "port": str(recipe.launch.port),
        "host": settings.bind_host,
        "models_dir": str(home.models),
        "app_dir": str(app_dir),
        "outputs_dir": str(home.output_dir(recipe.id)),
        "env_python": str(envs.env_python(home, recipe.id)),
    }


def _package_sources(settings: Settings | None, torch_backend: str | None) -> list[str]:
    """Where uv will fetch packages from, in words (the recipe itself cannot name an index)."""
    if settings is not None and uvtool.has_user_sources(settings):
        return (
            ([f"index {settings.index_url}"] if settings.index_url else [])
            + [f"extra index {u}" for u in settings.extra_index_urls]
            + [f"wheel folder {f}" for f in settings.find_links]
        )
    out = ["PyPI (pypi.org)"]
    if torch_backend and torch_backend != "mps":
        out.append(f"PyTorch's {torch_backend} index (download.pytorch.org), for torch packages")
    return out


def preview(
    home: Home, settings: Settings, target: str, hw: Hardware, choices: Choices | None = None
) -> Preview:
    """Everything to show the user before an install: plan, manifest, licences. No I/O beyond
    reading the recipe."""
    found = catalogue.target(target)
    recipe, origin, text = found.recipe, found.origin, found.text
    choices = choices or Choices()
    p = plan(recipe, hw, choices)
    licences = [
        Licence(m.model, m.name, m.license, m.license_url, m.commercial, m.gated)
        for m in p.models
        if not m.commercial or m.gated
    ]
    # Code Darkroom does not ship (a git source, or a recipe from elsewhere) is shown first.
    manifest = (
        None
        if origin == "bundled" and recipe.bundled
        else manifest_of(recipe, origin, p, settings, home)
    )
    return Preview(recipe, p, origin, text, manifest, licences, choices)
