"""Real installs of the tiny app: a git repository made here, a real uv env from local wheel
folders, a weight file from the local test hub, a real check-start. Then update, a failed
update that restores the old version, rollback, remove, and interrupted installs."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from manager import envs, installer, launching
from manager import state as state_mod
from manager.config import Settings
from manager.errors import DarkroomError, DiskFull
from manager.hardware import load_profile
from manager.home import Home
from manager.supervisor import control
from tests.fixtures.tinyapp import free_port, tinyapp_launch
from tests.fixtures.tinygit import SHA, WEIGHTS, recipe_text
from tests.fixtures.tinygit import git as _git


@pytest.fixture
def settings(pip_sources) -> Settings:
    return Settings(
        extra_index_urls=pip_sources.extra_index_urls,
        find_links=pip_sources.find_links,
        port_start=20000,
        port_end=20100,
    )


@pytest.fixture
def setup(home: Home, hub, tiny_repo: Path, tmp_path: Path, settings: Settings):
    hub.add_file("tests/tiny-weights", "weights.bin", WEIGHTS)
    settings = settings.model_copy(update={"hf_endpoint": hub.url})
    port = free_port()

    def write(revision: str, **kw) -> str:
        path = tmp_path / f"tiny-{revision}.yaml"
        path.write_text(recipe_text(tiny_repo, revision, port, **kw))
        return str(path)

    yield home, settings, write
    for app in ("tiny",):
        with contextlib.suppress(DarkroomError):
            control.stop(home, app)


CPU = load_profile("cpu-only-16gb")


def test_install_needs_consent_then_runs_and_records(setup) -> None:
    home, settings, write = setup
    pv = installer.preview(home, settings, write("v0.1.0"), CPU)
    assert pv.manifest is not None and any("tinyapp" in " ".join(c) for c in pv.manifest.commands)
    assert [lic.model for lic in pv.licences] == ["tinyweights"]
    with pytest.raises(DarkroomError, match="consent"):
        installer.install(home, settings, pv)
    assert "tiny" not in state_mod.load(home).apps

    events = []
    record = installer.install(home, settings, pv, events.append, accepted=True)
    assert "packaging" in envs.info(home, "tiny").packages  # from the app's requirements.txt
    st = state_mod.load(home)
    assert st.apps["tiny"].version == "0.1.0" and record.source_revision
    (model,) = st.apps["tiny"].models
    assert model.files[0].sha256 == SHA
    assert {e.source for e in events} >= {"env", "weights", "install"}
    # The check-start ran and stopped the app again.
    assert control.app_status(home, "tiny") is None or not control.app_status(home, "tiny").active
    # Now it starts for real and gets its model description.
    spec = launching.launch_spec(home, settings, "tiny")
    models = json.loads(spec.env["DARKROOM_MODELS"])
    local = Path(models["models"]["tinyweights"]["files"][0]["local"])
    assert local.read_bytes() == WEIGHTS


def test_a_file_the_recipe_adds_to_an_installed_model_is_fetched(setup, hub) -> None:
    """A bundled recipe can give a model a new file without a new version (FLUX.1 Depth
    gained its depth estimator): installing again is then not "up to date" but fetches it."""
    home, settings, write = setup
    path = Path(write("v0.1.0"))
    pv = installer.preview(home, settings, str(path), CPU)
    installer.install(home, settings, pv, accepted=True, check_start=False)
    assert installer.up_to_date(home, replace(pv, origin="bundled"))
    hub.add_file("tests/tiny-weights", "estimator.bin", b"depth")
    path.write_text(
        path.read_text() + "          - {repo: tests/tiny-weights, path: estimator.bin, size: 5}\n"
    )
    grown = replace(installer.preview(home, settings, str(path), CPU), origin="bundled")
    assert not installer.up_to_date(home, grown)  # a bundled recipe's text is not compared
    installer.install(home, settings, grown, accepted=True, check_start=False)
    (model,) = state_mod.load(home).apps["tiny"].models
    assert {f.path for f in model.files} == {"weights.bin", "estimator.bin"}
    assert installer.up_to_date(home, grown)


def test_update_failed_update_restores_and_rollback(setup) -> None:
    home, settings, write = setup
    installer.install(
        home, settings, installer.preview(home, settings, write("v0.1.0"), CPU), accepted=True
    )
    v1_env = envs.info(home, "tiny").spec_hash

    installer.install(
        home, settings, installer.preview(home, settings, write("v0.2.0"), CPU), accepted=True
    )
    st = state_mod.load(home)
    assert st.apps["tiny"].version == "0.2.0" and st.apps["tiny"].previous.version == "0.1.0"
    assert (home.app_dir("tiny") / "tinyapp" / "marker.py").exists()
    v2_env = envs.info(home, "tiny").spec_hash
    assert v2_env != v1_env

    with pytest.raises(DarkroomError) as info:
        installer.install(
            home, settings, installer.preview(home, settings, write("v0.3.0"), CPU), accepted=True
        )
    assert "previous version of tiny was put back" in info.value.hint
    # The check-start saw the same start-up error twice and said so at once, naming it.
    assert "twice" in info.value.message and "broken on purpose" in info.value.message
    st = state_mod.load(home)
    assert st.apps["tiny"].version == "0.2.0"
    assert envs.info(home, "tiny").spec_hash == v2_env
    assert "broken on purpose" not in (home.app_dir("tiny") / "tinyapp" / "__main__.py").read_text()
    assert not list(home.staging.glob("journal-*"))

    back = installer.rollback(home, settings, "tiny")
    assert back.version == "0.1.0" and state_mod.load(home).apps["tiny"].version == "0.1.0"
    assert not (home.app_dir("tiny") / "tinyapp" / "marker.py").exists()
    # The env holds v0.1.0's code again (installed, not linked to the source folder).
    assert envs.verify(home, "tiny", check_import=True).ok
    assert not list(home.env_dir("tiny").rglob("site-packages/tinyapp/marker.py"))
    assert list(home.env_dir("tiny").rglob("site-packages/tinyapp/__main__.py"))


def test_remove_keeps_shared_models_only_when_used(setup) -> None:
    home, settings, write = setup
    installer.install(
        home,
        settings,
        installer.preview(home, settings, write("v0.1.0"), CPU),
        accepted=True,
        check_start=False,
    )
    blobs = list(home.models.rglob("blobs/*"))
    assert blobs
    result = installer.remove(home, settings, "tiny")
    assert "tiny" not in state_mod.load(home).apps
    assert not home.env_dir("tiny").exists() and not home.app_dir("tiny").exists()
    assert result.freed_bytes >= len(WEIGHTS)
    assert not any(b.exists() for b in blobs)
    with pytest.raises(DarkroomError, match="not installed"):
        installer.remove(home, settings, "tiny")


def test_bad_git_revision_leaves_nothing(setup) -> None:
    home, settings, write = setup
    pv = installer.preview(home, settings, write("v9.9.9"), CPU)
    with pytest.raises(DarkroomError, match="no revision 'v9.9.9'"):
        installer.install(home, settings, pv, accepted=True)
    assert "tiny" not in state_mod.load(home).apps
    assert not home.env_dir("tiny").exists() and not home.app_dir("tiny").exists()
    assert not list(home.staging.iterdir())


_KILL_SCRIPT = """
import sys
from manager import config, installer
from manager.hardware import load_profile
from manager.home import Home
home = Home.from_env()
settings = config.Settings.model_validate_json(sys.argv[2])
pv = installer.preview(home, settings, sys.argv[1], load_profile("cpu-only-16gb"))
installer.install(home, settings, pv, accepted=True)
"""


def test_kill_9_at_random_points_leaves_a_consistent_state(setup) -> None:
    """A seeded trial: installs and updates killed at random moments; after each, the next
    command (here `recover`, which every installer command runs first) leaves the app either
    working at a version it had, or cleanly absent."""
    home, settings, write = setup
    rng = random.Random(20261125)
    recipes = [write("v0.1.0", with_model=False), write("v0.2.0", with_model=False)]
    versions_seen = set()
    for trial in range(20):
        target = recipes[trial % 2]
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILL_SCRIPT, target, settings.model_dump_json()],
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.05, 2.5))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        installer.recover(home)
        # Runner processes started by the killed install's check-start are stopped by recover.
        st = state_mod.load(home)
        if "tiny" in st.apps:
            version = st.apps["tiny"].version
            versions_seen.add(version)
            assert envs.verify(home, "tiny", check_import=True).ok, f"trial {trial}"
            marker = (home.app_dir("tiny") / "tinyapp" / "marker.py").exists()
            assert marker == (version == "0.2.0"), f"trial {trial}: code and state disagree"
        else:
            assert not home.env_dir("tiny").exists(), f"trial {trial}: env left without state"
            assert not home.app_dir("tiny").exists(), f"trial {trial}: code left without state"
        assert not list(home.staging.glob("journal-*"))
        active = control.app_status(home, "tiny")
        assert active is None or not active.active
    print(f"versions seen after kills: {sorted(versions_seen)}")


def test_doctor_finds_and_fixes_damage_and_du_counts(setup) -> None:
    from manager import doctor

    home, settings, write = setup
    installer.install(
        home,
        settings,
        installer.preview(home, settings, write("v0.1.0"), CPU),
        accepted=True,
        check_start=False,
    )
    findings = doctor.check(home, settings, CPU)
    assert [f.topic for f in findings if f.level == "error"] == []

    # Damage the env and a model blob, and leave an interrupted-install journal.
    for pkg in home.env_dir("tiny").rglob("site-packages/tinyapp"):
        import shutil

        shutil.rmtree(pkg)
    (blob,) = [b for b in home.models.rglob("blobs/*") if b.stat().st_size == len(WEIGHTS)]
    blob.write_bytes(b"rotten")
    (home.staging / "journal-ghost.json").write_text('{"action": "install", "started": 0}')
    findings = doctor.check(home, settings, CPU, deep=True)
    topics = {f.topic for f in findings if f.level != "ok"}
    assert {"environments", "models", "interrupted"} <= topics, findings
    assert all(f.fix for f in findings if f.level == "error")

    results = doctor.fix(findings)
    assert all(r == "fixed" for _f, r in results), [(f.topic, r) for f, r in results]
    after = doctor.check(home, settings, CPU, deep=True)
    assert not [f for f in after if f.level == "error"], after
    assert list(home.env_dir("tiny").rglob("site-packages/tinyapp/__main__.py"))

    use = doctor.disk_use(home)
    assert use.apps["tiny"]["env"] > 0 and use.apps["tiny"]["models"] == len(WEIGHTS)
    assert use.models_actual >= len(WEIGHTS)


def _flip_a_byte(path: Path, at: int = 100) -> None:
    with open(path, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_a_damaged_weight_is_refused_at_start_reported_and_fetched_again(
    setup, hub, capsys
) -> None:
    """One flipped byte, then a truncation, in the installed app's weight file: start refuses
    with a sentence, doctor says so with the fix, and an update, `models pull` and
    `doctor --fix` each fetch it again instead of trusting its size."""
    from manager import config, doctor
    from manager.cli import main

    home, settings, write = setup
    config.save(home, settings)
    installer.install(
        home,
        settings,
        installer.preview(home, settings, write("v0.1.0"), CPU),
        accepted=True,
        check_start=False,
    )
    (blob,) = [b for b in home.models.rglob("blobs/*") if b.stat().st_size == len(WEIGHTS)]
    _flip_a_byte(blob)
    with pytest.raises(DarkroomError) as err:
        launching.launch_spec(home, settings, "tiny")
    assert "tiny was not started" in err.value.message and "damaged" in err.value.message
    assert "darkroom models pull tiny" in err.value.hint
    assert main(["start", "tiny"]) == 1
    out = capsys.readouterr()
    assert "was not started" in out.err and "Traceback" not in out.err
    assert control.app_status(home, "tiny") is None

    findings = [f for f in doctor.check(home, settings, CPU) if f.topic == "models"]
    assert len(findings) == 1 and findings[0].level == "error" and "damaged" in findings[0].text
    assert "doctor --fix" in findings[0].fix and findings[0].safe_fix is not None

    requests = hub.stats("weights.bin").requests
    installer.install(
        home,
        settings,
        installer.update_preview(home, settings, "tiny", CPU),
        accepted=True,
        check_start=False,
    )
    assert blob.read_bytes() == WEIGHTS and hub.stats("weights.bin").requests == requests + 1

    with open(blob, "r+b") as fh:
        fh.truncate(len(WEIGHTS) // 2)
    assert main(["models", "pull", "tiny"]) == 0
    assert blob.read_bytes() == WEIGHTS and hub.stats("weights.bin").requests == requests + 2

    _flip_a_byte(blob)
    findings = [f for f in doctor.check(home, settings, CPU) if f.topic == "models"]
    assert [r for _f, r in doctor.fix(findings)] == ["fixed"]
    assert blob.read_bytes() == WEIGHTS
    assert launching.launch_spec(home, settings, "tiny").app == "tiny"


def test_disk_full_mid_install_leaves_nothing_half_done(setup, small_disk) -> None:
    """A real small filesystem (tmpfs) fills up while the weights download."""
    home, settings, write = setup
    mount = small_disk(24)
    small = Home(mount / "home").ensure()
    pv = installer.preview(small, settings, write("v0.1.0"), CPU)
    # Another program fills the disk: the env build and the download meet a real ENOSPC.
    with open(mount / "filler", "wb") as fh, contextlib.suppress(OSError):
        fh.write(b"\0" * (23 * 1024 * 1024))
    with pytest.raises(DarkroomError) as info:
        installer.install(small, settings, pv, accepted=True, check_start=False)
    assert "space" in str(info.value).lower() or "disk" in str(info.value).lower()
    assert "tiny" not in state_mod.load(small).apps
    assert not small.env_dir("tiny").exists() and not small.app_dir("tiny").exists()
    assert not list(small.staging.glob("journal-*"))
    assert not list(small.models.rglob("*.incomplete"))


def _fill(folder: Path) -> None:
    """Fill a small filesystem to its last byte: every later write meets a real ENOSPC."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        for chunk in (1 << 16, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * chunk)


def test_a_full_disk_ends_each_write_in_a_sentence_and_keeps_the_old_state(
    setup, small_disk, monkeypatch, capsys
) -> None:
    """The disk is full before the install's first write (its journal): a sentence, and
    state, config and the installed app as they were, with no temp file left behind."""
    from manager import config
    from manager.cli import main
    from manager.state import InstalledApp, State

    home, settings, write = setup
    small = Home(small_disk(2) / "home").ensure()
    monkeypatch.setenv("DARKROOM_HOME", str(small.root))
    state_mod.save(small, State(apps={"tiny": InstalledApp(app="tiny", version="0.0.9")}))
    config.save(small, settings)
    before = {p: p.read_bytes() for p in (small.state_file, small.config_file)}
    pv = installer.preview(small, settings, write("v0.1.0"), CPU)
    _fill(small.root.parent)

    with pytest.raises(DiskFull) as err:
        installer.install(small, settings, pv, accepted=True, check_start=False)
    assert "disk is full" in err.value.message and "Free some space" in err.value.hint
    with pytest.raises(DiskFull, match="disk is full"), state_mod.transaction(small) as st:
        st.apps.pop("tiny")
    assert main(["config", "set", "offline", "true"]) == DiskFull.exit_code == 8
    out = capsys.readouterr()
    assert "disk is full" in out.err and "Traceback" not in out.err
    with pytest.raises(DarkroomError, match="disk is full"):
        control.start(small, settings, tinyapp_launch(small, "tiny"))
    assert control.app_status(small, "tiny") is None

    assert {p: p.read_bytes() for p in before} == before
    assert state_mod.load(small).apps["tiny"].version == "0.0.9"
    assert not list(small.staging.glob("journal-*"))
    assert not [p for p in small.root.rglob("*.tmp")]


def test_cli_install_asks_for_consent_and_prints_sentences(setup) -> None:
    home, settings, write = setup
    from manager import config

    config.save(home, settings)
    recipe = write("v0.1.0")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "manager", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )

    out = run("install", recipe, "--yes")
    assert out.returncode == 1 and "licences above need your acceptance" in out.stderr
    assert "Recipe from:" in out.stdout and "non-commercial" in out.stdout
    assert "tiny" not in state_mod.load(home).apps
    out = run("install", recipe, "--yes", "--accept-licences", "--no-check")
    assert out.returncode == 0, out.stderr
    assert "tiny" in state_mod.load(home).apps
    out = run("rollback", "tiny")
    assert (
        out.returncode == 4 and "no earlier version" in out.stderr and "Traceback" not in out.stderr
    )
    out = run("update", "tiny", "--yes", "--accept-licences", "--no-check")
    assert out.returncode == 0, out.stderr
    assert "already up to date" in out.stdout and "Download" not in out.stdout
    out = run("du")
    assert out.returncode == 0 and "tiny" in out.stdout
    out = run("remove", "tyni")
    assert out.returncode == 3 and "Did you mean 'tiny'?" in out.stderr  # NotFound
    # No terminal and no --yes: nothing is removed, and the sentence says how to.
    out = run("remove", "tiny")
    assert out.returncode == 1 and "remove tiny --yes" in out.stderr
    assert "tiny" in state_mod.load(home).apps and home.env_dir("tiny").exists()
    out = run("install", recipe, "--yes", "--accept-licences", "--no-check")
    assert out.returncode == 0 and "already installed and up to date" in out.stdout
    # Removed with its models kept, then installed again: the plan says the files are here.
    out = run("remove", "tiny", "--yes", "--keep-models")
    assert out.returncode == 0 and "tiny" not in state_mod.load(home).apps
    out = run("install", recipe, "--yes", "--accept-licences", "--no-check")
    assert out.returncode == 0, out.stderr
    assert f"Of that, {len(WEIGHTS) / 1000:.1f} KB is here already: 0 B to download." in out.stdout
    out = run("remove", "tiny", "--yes")
    assert out.returncode == 0 and "tiny" not in state_mod.load(home).apps


def test_git_app_gets_rendered_templates_and_library_links(setup) -> None:
    home, settings, write = setup
    path = Path(write("v0.1.0"))
    text = path.read_text().replace(
        "    name: Tiny weights\n", "    name: Tiny weights\n    library: upscale_models\n"
    )
    text += (
        "templates:\n  - dest: conf/paths.yaml\n    content: |\n"
        "      base: {models_dir}/library\n      out: {outputs_dir}\n      port: {port}\n"
    )
    path.write_text(text)
    installer.install(
        home,
        settings,
        installer.preview(home, settings, str(path), CPU),
        accepted=True,
        check_start=False,
    )
    rendered = (home.app_dir("tiny") / "conf" / "paths.yaml").read_text()
    assert f"base: {home.models}/library" in rendered and str(home.output_dir("tiny")) in rendered
    assert "{" not in rendered
    link = home.models / "library" / "upscale_models" / "weights.bin"
    store = json.loads(launching.launch_spec(home, settings, "tiny").env["DARKROOM_MODELS"])
    local = Path(store["models"]["tinyweights"]["files"][0]["local"])
    assert link.read_bytes() == WEIGHTS and os.path.samefile(link, local.resolve())


@pytest.mark.parametrize(
    ("profile", "backend"),
    [
        ("cpu-only-16gb", "cpu"),
        ("rtx3060-12gb", "cu124"),
        ("rtx4090-24gb", "cu128"),
        ("apple-m2-16gb", "mps"),
    ],
)
def test_third_party_recipes_plan_sensible_backends(profile: str, backend: str) -> None:
    from manager.catalogue import bundled_recipe
    from manager.planner import plan

    for app in ("comfyui", "forge"):
        recipe = bundled_recipe(app)
        assert recipe.source.git and len(recipe.source.revision or "") == 40
        p = plan(recipe, load_profile(profile))
        assert p.torch_backend == backend
        assert "torch" in p.torch_packages


def test_third_party_recipe_shows_a_manifest_first(home: Home) -> None:
    pv = installer.preview(home, Settings(), "comfyui", CPU)
    assert pv.manifest is not None
    lines = "\n".join(pv.manifest.lines())
    assert "github.com/comfyanonymous/ComfyUI" in lines and "main.py" in lines and "8188" in lines
    with pytest.raises(DarkroomError, match="consent"):
        installer.install(home, Settings(), pv)


def test_unreachable_git_and_unresolvable_requirements_leave_nothing(
    setup, tiny_repo: Path, tmp_path: Path
) -> None:

    home, settings, write = setup
    bad_url = Path(write("v0.1.0"))
    bad_url.write_text(
        bad_url.read_text().replace(f"file://{tiny_repo}", f"file://{tmp_path}/nowhere")
    )
    with pytest.raises(DarkroomError, match="could not be reached"):
        installer.install(
            home, settings, installer.preview(home, settings, str(bad_url), CPU), accepted=True
        )

    repo = tmp_path / "withreqs"
    _git(tmp_path, "clone", "-q", str(tiny_repo), str(repo))
    (repo / "requirements.txt").write_text("darkroom-test-no-such-package-xyz==1.0\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "reqs")
    _git(repo, "tag", "v0.4.0")
    reqs = Path(write("v0.4.0", with_model=False))
    reqs.write_text(reqs.read_text().replace(str(tiny_repo), str(repo)))
    with pytest.raises(DarkroomError) as info:
        installer.install(
            home, settings, installer.preview(home, settings, str(reqs), CPU), accepted=True
        )
    assert "darkroom-test-no-such-package-xyz" in str(info.value)
    for leftover in (home.env_dir("tiny"), home.app_dir("tiny")):
        assert not leftover.exists()
    assert "tiny" not in state_mod.load(home).apps and not list(home.staging.iterdir())
