"""Third-party apps installed from git the way their authors intend (issue #20), with fixtures
shaped like the real ones: a ComfyUI-like checkout (metadata-only pyproject.toml, several
top-level packages, requirements.txt, writes into user/ at runtime, reads
extra_model_paths.yaml) built and run through the real recipes/comfyui.yaml; a Forge-like
source that needs an extra repository pinned by commit."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from manager import appsource, doctor, envs, installer, launching, library, uvtool, weights
from manager import recipe as recipe_mod
from manager import state as state_mod
from manager.bundled import recipes_dir
from manager.catalogue import bundled_recipe
from manager.cli import main as cli_main
from manager.config import Settings
from manager.errors import DarkroomError
from manager.hardware import load_profile
from manager.home import Home
from manager.recipe import parse_recipe
from manager.supervisor import control
from manager.weights.store import match_pattern
from tests.fixtures.terminal import on_a_terminal

FIXTURE = Path(__file__).parent / "fixtures" / "comfylike"
CPU = load_profile("cpu-only-16gb")
CKPT = b"a tiny checkpoint " * 500
CKPT_SHA = hashlib.sha256(CKPT).hexdigest()
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="session")
def comfy_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ComfyUI-like app as a bare repository: v1, and v2 (a new version string)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = tmp_path_factory.mktemp("comfyrepo")
    work = base / "work"
    shutil.copytree(FIXTURE, work, ignore=shutil.ignore_patterns("__pycache__"))
    _git(work, "init", "-q")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "v1")
    _git(work, "tag", "v1")
    (work / "comfy" / "__init__.py").write_text('VERSION = "2"\n')
    _git(work, "commit", "-q", "-am", "v2")
    _git(work, "tag", "v2")
    bare = base / "comfylike.git"
    _git(base, "clone", "-q", "--bare", str(work), str(bare))
    return bare


def comfy_recipe(repo: Path, revision: str, install: str | None = None) -> str:
    """The bundled recipes/comfyui.yaml itself, pointed at the local repository; torch left out
    (the fixture needs none) and one checkpoint from the test hub added."""
    text = (recipes_dir() / "comfyui.yaml").read_text()
    text = text.replace("id: comfyui", "id: comfy")
    text = text.replace(
        "  git: https://github.com/comfyanonymous/ComfyUI.git", f'  git: "file://{repo}"'
    )
    start = text.index("  revision: ")
    text = text[:start] + f"  revision: {revision}\n" + text[text.index("\n", start) + 1 :]
    text = text.replace("torch:\n  packages: [torch, torchvision, torchaudio]\n", "")
    text = text.replace("packages: [requests]", "packages: []")
    if install:
        text = text.replace("install: requirements", f"install: {install}")
    return (
        text
        + f"""\
models:
  - id: ckpt
    name: Tiny checkpoint
    license: mit
    commercial: true
    variants:
      - id: single
        label: single file
        library: checkpoints
        precision: fp16
        quality: 50
        vram_gb: 0
        ram_gb: 0.1
        files:
          - {{repo: tests/tiny-ckpt, path: tiny.safetensors, size: {len(CKPT)}, sha256: {CKPT_SHA}}}
"""
    )


@pytest.fixture
def comfy(home: Home, hub, comfy_repo: Path, tmp_path: Path, pip_sources):
    hub.add_file("tests/tiny-ckpt", "tiny.safetensors", CKPT)
    settings = Settings(
        extra_index_urls=pip_sources.extra_index_urls,
        find_links=pip_sources.find_links,
        port_start=20100,
        port_end=20200,
        hf_endpoint=hub.url,
    )

    def preview(revision: str, install: str | None = None) -> installer.Preview:
        path = tmp_path / f"comfy-{revision}-{install}.yaml"
        path.write_text(comfy_recipe(comfy_repo, revision, install))
        return installer.preview(home, settings, str(path), CPU)

    yield home, settings, preview
    with contextlib.suppress(DarkroomError):
        control.stop(home, "comfy")


def cli_main_out(argv: list[str]) -> str:
    """The CLI in this process (no terminal: it asks nothing); its exit code must be 0.
    Returns what it printed, progress (stderr) included."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer), redirect_stderr(buffer):
        code = cli_main(argv)
    assert code == 0, buffer.getvalue()
    return buffer.getvalue()


def _http(url: str, data: bytes | None = None) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with opener.open(req, timeout=10) as resp:
        return json.loads(resp.read())


def _start(home: Home, settings: Settings) -> str:
    return control.start(home, settings, launching.launch_spec(home, settings, "comfy")).url.rstrip(
        "/"
    )


def test_comfyui_like_checkout_installs_its_requirements_and_keeps_user_work(comfy, hub) -> None:
    """Findings 1, 2 and 4: the checkout's pyproject.toml is not built (setuptools would refuse
    it); the saved workflow survives update, rollback and a remove that keeps data; the
    checkpoint reaches the app through library/ and extra_model_paths.yaml."""
    home, settings, preview = comfy
    installer.install(home, settings, preview("v1"), accepted=True)  # check-start: /object_info
    app_dir = home.app_dir("comfy")
    assert (app_dir / "user").is_symlink() and not (app_dir / "user").resolve().is_relative_to(
        app_dir.resolve()
    )
    kept = appsource.data_dir(home, "comfy")
    assert (kept / "custom_nodes" / "example_node.py.example").is_file()  # what the checkout ships
    _pull_generator_flux(home, hub)  # the generator's FLUX files, in the store and library/
    url = _start(home, settings)
    info = _http(url + "/object_info")
    assert info["version"] == "1" and "tiny.safetensors" in info["models"]["checkpoints"]
    assert info["models"]["diffusion_models"] == [
        "flux1-schnell-Q4_K_S.gguf",
        "flux1-schnell-fp8-e4m3fn.safetensors",
    ]
    assert info["models"]["text_encoders"] == ["FLUX.1-schnell-text_encoder.safetensors"]
    assert info["models"]["vae"] == ["FLUX.1-schnell-vae.safetensors"]
    assert _http(url + "/userdata/flow.json", b'{"nodes": [1, 2, 3]}')["saved"]

    said: list[str] = []
    installer.install(
        home, settings, preview("v2"), lambda e: said.append(getattr(e, "text", "")), accepted=True
    )  # an update while it runs
    assert any("is updated. It is running again." in line for line in said), said  # finding 6
    url = control.app_status(home, "comfy").url.rstrip("/")
    assert _http(url + "/object_info")["version"] == "2"
    assert _http(url + "/userdata/flow.json") == {"nodes": [1, 2, 3]}

    installer.rollback(home, settings, "comfy")
    url = control.app_status(home, "comfy").url.rstrip("/")
    assert _http(url + "/object_info")["version"] == "1"
    assert _http(url + "/userdata/flow.json") == {"nodes": [1, 2, 3]}

    # `darkroom remove` on a terminal: yes to removing the app, no (the default) to its work.
    out = on_a_terminal("y\nn", "remove", "comfy")
    assert out.returncode == 0, out.stderr
    assert "Also delete your saved work (custom_nodes, input, models, output, user:" in out.stdout
    assert f"Its saved work is kept in {kept}" in out.stderr
    assert "comfy" not in state_mod.load(home).apps and not app_dir.exists()
    assert json.loads((kept / "user" / "default" / "workflows" / "flow.json").read_text()) == {
        "nodes": [1, 2, 3]
    }
    installer.install(home, settings, preview("v2"), accepted=True, check_start=False)
    assert json.loads((app_dir / "user" / "default" / "workflows" / "flow.json").read_text())[
        "nodes"
    ] == [1, 2, 3]
    cli_main_out(["remove", "comfy", "--yes", "--delete-data"])
    assert "comfy" not in state_mod.load(home).apps and not kept.exists()


def test_a_checkout_installed_as_a_package_shows_the_build_error(comfy) -> None:
    """Finding 1: `install: project` on a checkout setuptools cannot build names the package
    and setuptools' reason, not uv's last line; nothing is left installed."""
    home, settings, preview = comfy
    with pytest.raises(DarkroomError) as info:
        installer.install(
            home, settings, preview("v1", install="project"), accepted=True, check_start=False
        )
    message = str(info.value)
    assert "comfylike" in message and "Multiple top-level packages" in message, message
    assert "Build failures usually indicate" not in message
    assert "comfy" not in state_mod.load(home).apps and not home.app_dir("comfy").exists()


def test_extra_repositories_are_cloned_at_their_pinned_commit(
    home: Home, comfy_repo: Path, tmp_path: Path
) -> None:
    """Finding 3: a Forge-like recipe gets its extra repository inside the checkout at the
    commit it pins; a commit the repository lacks stops the install with a sentence."""
    guess = tmp_path / "guess"
    guess.mkdir()
    (guess / "huggingface_guess.py").write_text("GUESS = 1\n")
    _git(guess, "init", "-q")
    _git(guess, "add", "-A")
    _git(guess, "commit", "-q", "-m", "one")
    pinned = _git(guess, "rev-parse", "HEAD")
    (guess / "huggingface_guess.py").write_text("GUESS = 2\n")
    _git(guess, "commit", "-q", "-am", "two")
    text = f"""\
id: forgelike
name: Forge-like
description: needs an extra repository
version: "1"
license: mit
source: {{git: "file://{comfy_repo}", revision: v1}}
extra_repos:
  - {{git: "file://{guess}", commit: {pinned}, dest: repositories/huggingface_guess}}
launch: {{command: ["{{env_python}}", "main.py"], port: 7999}}
"""
    recipe = parse_recipe(text)
    source, staged = appsource.stage(home, recipe)
    assert staged is not None
    assert (
        staged / "repositories" / "huggingface_guess" / "huggingface_guess.py"
    ).read_text() == "GUESS = 1\n"
    assert source.local_packages == [] and [p.name for p in source.requirement_files] == [
        "requirements.txt"
    ]
    shutil.rmtree(staged)
    wrong = parse_recipe(text.replace(pinned, "deadbeef" * 5))
    with pytest.raises(DarkroomError, match="huggingface_guess|no revision|could not be reached"):
        appsource.stage(home, wrong)
    assert not list(home.staging.glob("src-forgelike-*"))


def _repo_with(folder: Path, files: dict[str, str]) -> str:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    _git(folder, "init", "-q")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "one")
    return _git(folder, "rev-parse", "HEAD")


# The generator's FLUX.1 [schnell] files as its repositories lay them out (tiny bytes).
FLUX_FILES = {
    "black-forest-labs/FLUX.1-schnell": {
        "text_encoder/config.json": b"{}",
        "text_encoder/model.safetensors": b"clip-l " * 100,
        "text_encoder_2/model-00001-of-00002.safetensors": b"t5 part one " * 100,
        "text_encoder_2/model-00002-of-00002.safetensors": b"t5 part two " * 100,
        "vae/config.json": b"{}",
        "vae/diffusion_pytorch_model.safetensors": b"vae " * 100,
    },
    "city96/FLUX.1-schnell-gguf": {"flux1-schnell-Q4_K_S.gguf": b"gguf q4 " * 100},
    "Kijai/flux-fp8": {"flux1-schnell-fp8-e4m3fn.safetensors": b"fp8 " * 100},
}


def _pull_generator_flux(home: Home, hub) -> None:
    """The generator's FLUX.1 [schnell] files, through the shipped generator.yaml's own file
    entries (only the bytes, sizes and commits are the test hub's), pulled and linked."""
    flux = bundled_recipe("generator").model("flux-schnell")
    specs = []
    for entry in [
        *flux.common_files,
        *flux.variant("gguf-q4").files,
        *flux.variant("fp8").files,
    ]:
        files = FLUX_FILES.get(entry.repo, {})
        chosen = {p: d for p, d in files.items() if match_pattern(entry.path, [p])}
        if not chosen:
            continue  # tokenizers, scheduler: nothing an app loads
        commit = hub.add_files(entry.repo, chosen)
        size = sum(len(d) for d in chosen.values())
        specs.append(entry.model_copy(update={"revision": commit, "size": size, "sha256": None}))
    local = weights.pull(home, Settings(hf_endpoint=hub.url), specs)
    library.link_local(home, bundled_recipe("generator"), local)


def test_forge_like_app_with_its_extra_repositories_is_really_ready(
    home: Home, hub, tmp_path: Path, pip_sources
) -> None:
    """Finding 3 through the shipped recipes/forge.yaml: its extra repositories are cloned
    where Forge looks, so the app's API (the recipe's readiness route, not /internal/ping)
    answers, and install's check-start passes. Finding 4: Forge, which takes one --ckpt-dir,
    lists the generator's FLUX GGUF and fp8 files among its checkpoints, and its text encoder
    and VAE among its modules; the sharded T5 and the configs are linked nowhere."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    _pull_generator_flux(home, hub)
    app = tmp_path / "forge-src"
    shutil.copytree(
        Path(__file__).parent / "fixtures" / "forgelike",
        app,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    _git(app, "init", "-q")
    _git(app, "add", "-A")
    _git(app, "commit", "-q", "-m", "forge")
    text = (recipes_dir() / "forge.yaml").read_text().replace("id: forge", "id: forgelike")
    text = text.replace(
        "https://github.com/lllyasviel/stable-diffusion-webui-forge.git", f"file://{app}"
    )
    text = text.replace('python: "3.10"', 'python: "3.11"').replace(
        "torch:\n  packages: [torch, torchvision]\n", ""
    )
    start = text.index("  revision: ")
    text = text[:start] + "  revision: HEAD\n" + text[text.index("\n", start) + 1 :]
    recipe = bundled_recipe("forge")
    for extra in recipe.extra_repos:
        name = extra.dest.rsplit("/", 1)[-1]
        commit = _repo_with(tmp_path / name, {f"{name.replace('-', '_')}.py": "OK = True\n"})
        text = text.replace(extra.git, f"file://{tmp_path / name}").replace(extra.commit, commit)
    path = tmp_path / "forgelike.yaml"
    path.write_text(text)
    settings = Settings(
        extra_index_urls=pip_sources.extra_index_urls,
        find_links=pip_sources.find_links,
        port_start=20200,
        port_end=20300,
    )
    try:
        installer.install(
            home, settings, installer.preview(home, settings, str(path), CPU), accepted=True
        )
        guess = (
            home.app_dir("forgelike")
            / "repositories"
            / "huggingface_guess"
            / "huggingface_guess.py"
        )
        assert guess.is_file() and "forgelike" in state_mod.load(home).apps
        url = control.start(
            home, settings, launching.launch_spec(home, settings, "forgelike")
        ).url.rstrip("/")
        checkpoints = {m["title"] for m in _http(url + "/sdapi/v1/sd-models")}
        modules = {m["model_name"] for m in _http(url + "/sdapi/v1/sd-modules")}
    finally:
        with contextlib.suppress(DarkroomError):
            control.stop(home, "forgelike")
    assert checkpoints == {
        "unet/flux1-schnell-Q4_K_S.gguf",
        "diffusion_models/flux1-schnell-fp8-e4m3fn.safetensors",
    }, checkpoints
    assert modules == {
        "FLUX.1-schnell-text_encoder.safetensors",
        "FLUX.1-schnell-vae.safetensors",
    }, modules
    linked = {p.name for p in (home.models / "library").rglob("*") if p.is_file()}
    assert not any("of-00002" in n or n.endswith(".json") for n in linked), linked


def test_bundled_third_party_recipes_pin_extras_check_real_readiness_and_share_models() -> None:
    """Findings 3 and 4 on the shipped recipes: Forge's extra repositories pinned by commit
    where its launcher would clone them, health routes that need a working app, and the
    generator's single-file FLUX/SD 3.5 builds in library folders ComfyUI reads."""
    forge = bundled_recipe("forge")
    dests = {e.dest for e in forge.extra_repos}
    assert {
        "repositories/huggingface_guess",
        "repositories/BLIP",
        "repositories/stable-diffusion-webui-assets",
    } <= dests
    assert forge.launch.health.startswith("/sdapi/") and forge.install == "requirements"
    comfyui = bundled_recipe("comfyui")
    assert comfyui.launch.health == "/object_info" and "user" in comfyui.data
    generator = bundled_recipe("generator")
    flux = generator.model("flux-schnell")
    gguf = flux.variant("gguf-q4").files[0]
    assert library.kind_of(flux, "gguf-q4", gguf.repo, gguf.path) == "unet"
    fp8 = flux.variant("fp8").files[0]
    assert library.kind_of(flux, "fp8", fp8.repo, fp8.path) == "diffusion_models"
    common = flux.common_files[0]
    assert library.kind_of(flux, "gguf-q4", common.repo, common.path) is None
    # The pipeline's single-file CLIP text encoders and VAE are shared under their repo's
    # name; T5 (two shards) and the configs beside the weights are not.
    repo = "black-forest-labs/FLUX.1-schnell"
    for path, kind in {
        "text_encoder/model.safetensors": "text_encoders",
        "vae/diffusion_pytorch_model.safetensors": "vae",
        "text_encoder_2/model-00001-of-00002.safetensors": None,
        "vae/config.json": None,
    }.items():
        assert library.kind_of(flux, "gguf-q4", repo, path) == kind, path
    assert library.library_name(repo, "vae/diffusion_pytorch_model.safetensors") == (
        "FLUX.1-schnell-vae.safetensors"
    )
    sd35 = generator.model("sd35-large-turbo")
    clip_g = ("stabilityai/stable-diffusion-3.5-large-turbo", "text_encoder_2/model.safetensors")
    assert library.kind_of(sd35, "gguf-q4", *clip_g) == "text_encoders"
    for variant in ("gguf-q8", "gguf-q4"):  # every GGUF build reaches unet/
        turbo = sd35.variant(variant).files[0]
        assert library.kind_of(sd35, variant, turbo.repo, turbo.path) == "unet"
    # Forge's one checkpoint folder gathers checkpoints, diffusion models and unet files.
    ckpt_dir = forge.launch.command[forge.launch.command.index("--ckpt-dir") + 1]
    assert ckpt_dir == "{models_dir}/library/webui_checkpoints"
    assert library.VIEWS["webui_checkpoints"] == ("checkpoints", "diffusion_models", "unet")
    assert "requests" in comfyui.packages  # imported by ComfyUI, missing from its requirements
    manifest = "\n".join(
        installer.preview(Home(Path("/nonexistent")), Settings(), "forge", CPU).manifest.lines()
    )
    assert "salesforce/BLIP.git at 48211a1594f1" in manifest  # extra code is shown before consent
    template = comfyui.templates[0].content
    assert "unet" in template and "diffusion_models" in template and "checkpoints" in template


def test_an_imported_pinned_file_installs_without_asking_the_hub_and_is_linked(
    home: Home, hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 5: `models import` of a file whose hash the recipe pins links it into library/,
    and planning and pulling it then ask no hub (the hub here is unreachable)."""
    commit = hub.add_file("tests/tiny-ckpt", "tiny.safetensors", CKPT)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    dead = Settings(hf_endpoint="http://127.0.0.1:9")
    text = comfy_recipe(Path("/nowhere"), "v1").replace(
        "tiny.safetensors, size", f"tiny.safetensors, revision: {commit}, size"
    )
    path = tmp_path / "comfy.yaml"
    path.write_text(text)
    mine = tmp_path / "downloaded-earlier.safetensors"
    mine.write_bytes(CKPT)
    assert cli_main(["models", "import", str(mine), "--app", str(path), "--model", "ckpt"]) == 0
    link = home.models / "library" / "checkpoints" / "tiny.safetensors"
    assert link.read_bytes() == CKPT

    spec = parse_recipe(text).model("ckpt").variants[0].files[0]
    plan = weights.plan_download(home, [spec], dead)
    assert plan.exact and not plan.missing
    local = weights.pull(home, dead, [spec])
    assert os.path.samefile(link, local[0].local_path.resolve())
    # No app uses it: gc empties the store, and the library link goes with the file (finding 6).
    assert cli_main(["models", "gc", "--yes"]) == 0
    assert not local[0].local_path.exists() and not link.exists()
    # `models pull` links what it fetched, as install does.
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    assert cli_main(["models", "pull", str(path), "--hardware", "cpu-only-16gb"]) == 0
    assert link.read_bytes() == CKPT


def test_uv_errors_name_the_python_download_and_the_failing_build() -> None:
    """Finding 6 (and 1): a failed Python download is not "the package index could not be
    reached"; a failed build names the package and its backend's reason."""
    settings = Settings()
    python = uvtool.explain(
        uvtool.UvFailure(
            2,
            (
                "error: Failed to install cpython-3.10.16-linux-x86_64-gnu\n"
                "  Caused by: Failed to download https://github.com/astral-sh/python-build-standalone/releases/"
                "download/20250115/cpython-3.10.16.tar.gz\n  Caused by: error sending request for url\n"
            ),
        ),
        "forge",
        settings,
    )
    assert "Python could not be found or downloaded" in python.message
    build = uvtool.explain(
        uvtool.UvFailure(
            1,
            (
                "error: Failed to build `tokenizers==0.13.3`\n  cause: The build backend returned an error\n"
                "  cause: Call to `setuptools.build_meta.build_wheel` failed (exit status: 1)\n\n"
                "         [stderr]\n         running build_rust\n"
                "         error: can't find Rust compiler\n\n"
                "hint: Build failures usually indicate a problem with the package or the build environment\n"
            ),
        ),
        "forge",
        settings,
    )
    assert "tokenizers" in build.message and "can't find Rust compiler" in build.message


def test_an_install_from_before_data_folders_keeps_its_work_on_update(
    home: Home, comfy_repo: Path
) -> None:
    """Finding 2 for apps installed before recipes declared data: the user's real user/
    folder in the installed checkout moves to appdata/ (their copy wins over what the new
    version ships), and the old checkout links to it, so a rollback still sees it."""
    old = home.app_dir("comfy") / "user" / "default"
    old.mkdir(parents=True)
    (old / "mine.json").write_text("{}")
    clash = appsource.data_dir(home, "comfy") / "user" / "default"
    clash.mkdir(parents=True)
    (clash / "mine.json").write_text('{"from": "a removed install"}')
    (home.app_dir("comfy") / "custom_nodes").mkdir()
    (home.app_dir("comfy") / "custom_nodes" / "example_node.py.example").write_text(
        "the user's edit\n"
    )
    recipe = parse_recipe(comfy_recipe(comfy_repo, "v2"))
    _source, staged = appsource.stage(home, recipe)
    assert staged is not None
    kept = appsource.data_dir(home, "comfy")
    assert (kept / "user" / "default" / "mine.json").read_text() == '{"from": "a removed install"}'
    assert (
        kept / "user" / "default" / "mine.json.before-update-1"
    ).read_text() == "{}"  # nothing lost
    assert (kept / "custom_nodes" / "example_node.py.example").read_text() == "the user's edit\n"
    assert (home.app_dir("comfy") / "user").is_symlink() and (staged / "user").is_symlink()
    assert (staged / "user" / "default" / "mine.json").is_file()
    shutil.rmtree(staged)


def test_a_bundled_git_recipe_is_shown_as_darkrooms_with_real_paths(
    home: Home, tmp_path: Path
) -> None:
    """Finding 6: the manifest of the bundled ComfyUI recipe called it "not part of Darkroom"
    and showed raw placeholders ({models_dir}/library, {env_python}); a copy of it under
    another id is still a recipe from elsewhere."""
    pv = installer.preview(home, Settings(), "comfyui", CPU)
    assert pv.manifest is not None
    text = "\n".join([pv.manifest.heading, *pv.manifest.lines()])
    assert "not part of Darkroom" not in text and "Recipe from: Darkroom" in text
    assert not [name for name in recipe_mod.PLACEHOLDERS if "{" + name + "}" in text], text
    assert f"base_path: {home.models}/library" in text
    assert f"{envs.env_python(home, 'comfyui')} {home.app_dir('comfyui')}/main.py" in text
    out = subprocess.run(
        [sys.executable, "-m", "manager", "install", "comfyui", "--hardware", "cpu-only-16gb"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert out.returncode == 1 and "the recipe was not confirmed" in out.stderr, out.stderr
    assert pv.manifest.heading in out.stdout and "{models_dir}" not in out.stdout

    copy = tmp_path / "my-comfyui.yaml"
    copy.write_text((recipes_dir() / "comfyui.yaml").read_text().replace("id: comfyui", "id: mine"))
    mine = installer.preview(home, Settings(), str(copy), CPU).manifest
    assert mine is not None and "not part of Darkroom" in mine.heading
    assert f"Recipe from: {copy.resolve()}" in mine.lines()


def test_a_git_mirror_set_in_gits_own_config_serves_the_bundled_recipe(
    home: Home, comfy_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's way for a user with a git mirror: git's url.<mirror>.insteadOf. The shipped
    ComfyUI recipe's github.com address is cloned from the mirror (GitHub is unreachable here)."""
    mirror = tmp_path / "mirror"
    (mirror / "comfyanonymous").mkdir(parents=True)
    _git(
        tmp_path,
        "clone",
        "-q",
        "--bare",
        str(comfy_repo),
        str(mirror / "comfyanonymous" / "ComfyUI.git"),
    )
    config = tmp_path / "gitconfig"
    config.write_text(f'[url "file://{mirror}/"]\n\tinsteadOf = https://github.com/\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    text = (recipes_dir() / "comfyui.yaml").read_text()
    assert "git: https://github.com/comfyanonymous/ComfyUI.git" in text
    start = text.index("  revision: ")
    text = text[:start] + "  revision: v2\n" + text[text.index("\n", start) + 1 :]
    _source, staged = appsource.stage(home, parse_recipe(text))
    assert staged is not None
    assert (staged / "comfy" / "__init__.py").read_text() == 'VERSION = "2"\n'
    shutil.rmtree(staged)


def test_remove_with_yes_keeps_saved_work_and_only_delete_data_deletes_it(home: Home) -> None:
    """Finding 2 at the CLI: `--yes` answers "remove the app", never "delete my work" (no
    terminal: nothing is asked, the work stays); `--delete-data` is the one way to delete it."""
    data = appsource.data_dir(home, "comfyui")
    work = data / "user" / "default" / "workflows" / "flow.json"

    def installed_with_work() -> None:
        work.parent.mkdir(parents=True, exist_ok=True)
        work.write_text("{}")
        with state_mod.transaction(home) as st:
            st.apps["comfyui"] = state_mod.InstalledApp(app="comfyui", version="1")

    installed_with_work()
    out = cli_main_out(["remove", "comfyui", "--yes"])
    assert f"Its saved work is kept in {data}" in out and work.read_text() == "{}"
    assert "comfyui" not in state_mod.load(home).apps
    installed_with_work()
    cli_main_out(["remove", "comfyui", "--yes", "--delete-data"])
    assert not data.exists() and "comfyui" not in state_mod.load(home).apps


def test_du_counts_library_links_as_free(home: Home, hub) -> None:
    """Finding 6: a weight hard-linked into library/ takes no second copy, and `du` must not
    count it as unused or as space sharing costs."""
    commit = hub.add_file("tests/tiny-ckpt", "tiny.safetensors", CKPT)
    recipe = parse_recipe(comfy_recipe(Path("/nowhere"), "v1"))
    spec = recipe.model("ckpt").variants[0].files[0].model_copy(update={"revision": commit})
    local = weights.pull(home, Settings(hf_endpoint=hub.url), [spec])
    assert library.link_local(home, recipe, local)
    with state_mod.transaction(home) as st:
        st.apps["comfy"] = state_mod.InstalledApp(
            app="comfy",
            version="1",
            models=[
                state_mod.InstalledModel(
                    model="ckpt", variant="single", files=[local[0].installed()]
                )
            ],
        )
    use = doctor.disk_use(home)
    # What is left over is the store's own bookkeeping (refs, snapshot links), not a copy.
    assert use.models_actual == len(CKPT) and use.models_unused < len(CKPT) // 4
    assert use.saved == 0


def test_the_webui_checkpoint_folder_links_kinds_and_gc_leaves_it(home: Home) -> None:
    """Finding 4: library/webui_checkpoints holds links to checkpoints/, diffusion_models/ and
    unet/ (no file twice); emptying the store removes the files, never the links or kinds."""
    base = library.ensure(home)
    gguf = base / "unet" / "flux1-schnell-Q4_K_S.gguf"
    gguf.write_bytes(b"not in the store")
    view = base / "webui_checkpoints"
    assert (view / "unet" / gguf.name).read_bytes() == b"not in the store"
    assert sorted(p.name for p in view.iterdir()) == ["checkpoints", "diffusion_models", "unet"]
    library.ensure(home)  # a second time changes nothing
    assert library.unlink_unused(home) == 1
    assert not gguf.exists() and (view / "unet").is_dir() and (base / "unet").is_dir()


def test_a_checkout_is_installed_as_its_recipe_says_else_by_what_it_ships(tmp_path: Path) -> None:
    """Finding 1: the recipe says how (requirements, packages, project); without a word, a
    checkout with a requirements.txt is requirements only, its pyproject.toml left unbuilt."""
    app = tmp_path / "comfylike"
    shutil.copytree(FIXTURE, app, ignore=shutil.ignore_patterns("__pycache__"))
    base = 'id: x\nname: X\ndescription: d\nversion: "1"\nlicense: mit\n'
    base += 'source: {git: "file:///nowhere", revision: v1}\n'
    base += 'launch: {command: ["{env_python}", "main.py"], port: 7999}\n'

    def mode(extra: str = "") -> str:
        return appsource.install_mode(parse_recipe(base + extra), app)

    assert mode() == "requirements"
    assert mode("install: packages\n") == "packages"
    assert mode("install: project\n") == "project"
    (app / "requirements.txt").unlink()
    assert mode() == "project"  # a pyproject.toml and nothing else: the project is the package
    (app / "pyproject.toml").unlink()
    assert mode() == "packages"
