"""Hostile recipes and command lines: nothing they name runs, nothing lands outside the data
folder, and every refusal is a sentence (no traceback, no hang).

The corpus is generated from a table of hostile field values (not committed as files), and
every verb that takes an app id is called with path-like, huge and control-character ids.
The CLI runs in-process (its `main`) for speed; the two cases that used to hang run as real
subprocesses with a timeout, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from manager import appsource, doctor, envs, hardware, installer, validate
from manager.cli import main
from manager.config import Settings
from manager.errors import DarkroomError
from manager.home import Home
from manager.recipe import RecipeError, parse_recipe
from manager.weights.remote import http_error

PROFILE = "cpu-only-16gb"


def base_recipe() -> dict:
    """A valid non-bundled recipe touching every field the corpus attacks."""
    return {
        "id": "hostile",
        "name": "Hostile",
        "description": "a test",
        "version": "1",
        "license": "mit",
        "source": {"git": "https://example.invalid/x.git", "revision": "v1"},
        "packages": ["tinypkg>=1"],
        "backend_packages": {"cuda": ["cudapkg"]},
        "torch": {"packages": ["torch"]},
        "requirements": ["requirements.txt"],
        "check_import": "hostile",
        "launch": {
            "command": ["{env_python}", "-m", "hostile"],
            "port": 7999,
            "env": {"A": "1"},
            "backend_args": {"cpu": ["--cpu"]},
        },
        "needs": ["restorer"],
        "templates": [{"dest": "conf/x.yaml", "content": "base: {models_dir}\n"}],
        "models": [
            {
                "id": "m",
                "name": "M",
                "license": "mit",
                "commercial": True,
                "variants": [
                    {
                        "id": "v",
                        "label": "V",
                        "precision": "fp16",
                        "quality": 50,
                        "vram_gb": 1,
                        "ram_gb": 1,
                        "files": [{"repo": "owner/name", "path": "a.safetensors", "size": 10}],
                    }
                ],
            }
        ],
    }


FILE = ("models", 0, "variants", 0, "files", 0)
VARIANT = ("models", 0, "variants", 0)

# (field path, hostile value, accepted?): True = allowed, and shown before anything runs;
# "quiet" = allowed once cleaned (text that is not part of what runs); False = refused.
HOSTILE: list[tuple[tuple, object, bool | str]] = [
    *[
        (("source", "revision"), v, False)
        for v in (
            "--upload-pack=touch SENTINEL/rev",
            "-c",
            "--output=SENTINEL/x",
            "../../..",
            "a..b",
            "HEAD@{1}",
            "x\n--upload-pack=y",
            "",
            "a" * 5000,
            ";touch SENTINEL/x",
            "$(touch SENTINEL/x)",
            "v1 --foo",
            "refs/heads/../../x",
            "main/",
            "x.lock",
            ".hidden",
        )
    ],
    *[
        (("source", "git"), v, False)
        for v in (
            "ext::sh -c touch% SENTINEL/ext",
            "--upload-pack=touch SENTINEL/x",
            "fd::3",
            "http://example.invalid/x",
            "git://example.invalid/x",
            "ssh://-oProxyCommand=touch%20SENTINEL/x/y",
            "-oProxyCommand=x",
            "file:///tmp/x\n",
            "https://example.invalid/x y",
            "",
            "transport::x",
            "a" * 3000,
        )
    ],
    *[
        (("packages", 0), v, False)
        for v in (
            "--index-url=http://evil.invalid/simple",
            "-r/etc/shadow",
            "-r /etc/shadow",
            "-e .",
            "--no-deps",
            "-cconstraints.txt",
            "torch; os.system('x')",
            "x @ http://evil.invalid/x.whl",
            "pkg\n-r /etc/shadow",
            "",
            "pkg --index-url=http://evil.invalid",
            "../../etc/shadow",
            "/etc/shadow",
        )
    ],
    *[
        (("backend_packages", "cuda", 0), v, False)
        for v in ("--extra-index-url=http://evil.invalid", "-r/etc/shadow")
    ],
    *[(("torch", "packages", 0), v, False) for v in ("--index-url=http://evil.invalid", "-f/tmp")],
    *[
        (("id",), v, False)
        for v in ("../../x", "/etc/passwd", "A" * 5000, "", "-rf", "a/b", "CON.", "caf\u00e9")
    ],
    (("id",), "x\x1b[31m", "quiet"),  # escapes are dropped from all recipe text: this is id 'x'
    *[(("needs", 0), v, False) for v in ("../../x", "/etc/passwd", "x y", "A", "x" * 100)],
    *[((*FILE, "revision"), v, False) for v in ("../../..", "--x", "a/../../b", "", "/abs")],
    *[((*FILE, "repo"), v, False) for v in ("../x", "a/..", "a/b/c", "..a/b", "-a/b", "a")],
    *[
        ((*FILE, "path"), v, False)
        for v in ("../x", "/etc/passwd", "C:\\x", "a/../../b", "..\\..\\x", "")
    ],
    *[((*FILE, "size"), v, False) for v in (10**400, -1, 1e30, float("inf"), "1e400", 10**14)],
    *[((*VARIANT, "vram_gb"), v, False) for v in (float("inf"), float("nan"), 1e308, -1)],
    *[(("launch", "port"), v, False) for v in (10**400, 80, -1, 70000)],
    *[(("launch", "startup_timeout_s"), v, False) for v in (float("inf"), 10**400, 0, 1e12)],
    *[
        (("templates", 0, "dest"), v, False)
        for v in ("../../x", "/etc/cron.d/x", "C:/x", "a/../../x")
    ],
    *[(("requirements", 0), v, False) for v in ("../../etc/shadow", "/etc/shadow")],
    *[
        (("check_import",), v, False)
        for v in ("os; import x", "__import__('os').system('x')", "a b")
    ],
    (("python",), "3.11; rm -rf /", False),
    (("source", "bundled"), "../x", False),
    (("launch", "command"), ["sh -c 'touch SENTINEL/x'"], False),
    (("launch", "env"), {"A=B": "x"}, False),
    (("launch", "health"), "http://evil.invalid/", False),
    (("models", 0, "library"), "../x", False),
    # Allowed, but shown to the user before anything runs (and shown clean):
    (("launch", "env"), {"LD_PRELOAD": "SENTINEL/evil.so"}, True),
    (("launch", "backend_args"), {"cpu": ["--load-plugin", "SENTINEL/p.py"]}, True),
    (("templates", 0, "content"), "startup: SENTINEL/run.sh\n", True),
    (("name",), "\x1b[2J\x1b[31mEvil\x07", True),
    (("description",), "\u202eevil \x1b]0;title\x07", "quiet"),
    (("version",), "1\x1b[1A", True),
    (("source", "git"), "file:///SENTINEL/repo", True),
    (("source", "revision"), "0123456789abcdef0123456789abcdef01234567", True),
    (("packages", 0), "diffusers[torch]>=0.30; python_version >= '3.10'", True),
]


def _set(data: dict, path: tuple, value: object) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def _text(value: object, sentinel: Path) -> object:
    if isinstance(value, str):
        return value.replace("SENTINEL", str(sentinel))
    if isinstance(value, list):
        return [_text(v, sentinel) for v in value]
    if isinstance(value, dict):
        return {k: _text(v, sentinel) for k, v in value.items()}
    return value


def _dump(data: dict) -> str:
    text = yaml.safe_dump(data, allow_unicode=False, sort_keys=False, width=10**6)
    # safe_dump cannot write the big integers as plain numbers in every case; it does, but inf/nan
    # become .inf/.nan, which is what a hostile recipe would write too.
    return text


def _cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A folder outside the data folder that nothing may write into."""
    path = tmp_path / "sentinel"
    path.mkdir()
    return path


def _outside(home: Home, tmp_path: Path) -> set[str]:
    """Everything under tmp_path that is not in the data folder (or the test's own files)."""
    return {
        str(p.relative_to(tmp_path))
        for p in tmp_path.rglob("*")
        if home.root not in (p, *p.parents) and p.parent.name != "corpus"
    }


def test_hostile_recipe_corpus(
    home: Home, sentinel: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert len(HOSTILE) >= 100
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    before = _outside(home, tmp_path)
    for i, (path, value, accepted) in enumerate(HOSTILE):
        data = copy.deepcopy(base_recipe())
        _set(data, path, _text(value, sentinel))
        file = corpus / f"r{i}.yaml"
        file.write_text(_dump(data), "utf-8")
        case = f"case {i}: {'.'.join(map(str, path))} = {value!r:.80}"
        code, out = _cli(["recipe", "check", str(file)], capsys)
        assert code == (0 if accepted else 1), f"{case}\n{out}"
        assert "Traceback" not in out and "\x1b" not in out and "\u202e" not in out, case
        # install without --yes: refused before anything is fetched; accepted recipes show a manifest.
        code, out = _cli(["install", str(file), "--hardware", PROFILE], capsys)
        assert code != 0 and "Traceback" not in out and "\x1b" not in out, f"{case}\n{out}"
        if accepted is True:
            assert "It will:" in out and "not confirmed" in out, f"{case}\n{out}"
            for shown in _flat(_text(value, sentinel)):
                assert validate.clean_text(shown, keep_newlines=True).strip() in out, (
                    f"{case}: {shown!r} not shown"
                )
    assert list(sentinel.iterdir()) == []
    assert _outside(home, tmp_path) == before


def _flat(value: object) -> list[str]:
    if isinstance(value, str):
        return [line for line in value.splitlines() if line.strip()]
    if isinstance(value, list):
        return [s for v in value for s in _flat(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _flat(v)] + list(value)
    return [str(value)]


BAD_IDS = [
    "../../sentinel/x",
    "SENTINEL/passwd",
    "a" * 5000,
    "x\x1b[2Jy",
    "\u202eabc",
    "x\ny",
    "..",
    ".",
    "",
    "Upper",
    "a/b",
    "x.yaml/../../y",
]

VERBS: list[list[str]] = [
    ["plan", "ID", "--hardware", PROFILE],
    ["install", "ID", "--hardware", PROFILE],
    ["update", "ID"],
    ["rollback", "ID"],
    ["remove", "ID"],
    ["start", "ID", "--hardware", PROFILE],
    ["stop", "ID"],
    ["restart", "ID"],
    ["status", "ID"],
    ["logs", "ID"],
    ["open", "ID"],
    *[
        ["env", action, "ID"]
        for action in ("build", "update", "verify", "repair", "rollback", "remove")
    ],
    ["models", "pull", "ID", "--hardware", PROFILE],
    ["models", "verify", "ID"],
    ["models", "import", "SENTINEL/none.bin", "--app", "ID", "--model", "m"],
    ["recipe", "check", "ID"],
]
# Not app ids: they may be accepted (an empty --hardware means this machine), but never with a
# traceback, an escape sequence on the terminal or a write outside the data folder.
OTHER_ARGS: list[list[str]] = [
    ["plan", "generator", "--hardware", "ID"],
    ["config", "set", "ID", "x"],
    ["models", "import", "ID", "--app", "generator", "--model", "flux-schnell"],
    ["env", "build", "generator", "--recipe", "ID"],
    ["install", "ID.yaml", "--hardware", PROFILE],
    ["models", "pull", "ID.yaml", "--hardware", PROFILE],
    ["config", "set", "hf_endpoint", "ID"],
    ["run", "ID", "SENTINEL"],
    ["run", "old-photo", "ID"],
]


def test_every_verb_refuses_hostile_ids(
    home: Home,
    sentinel: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(home.root)  # relative ids resolve next to the data folder's insides
    before = _outside(home, tmp_path)
    for verb in VERBS + OTHER_ARGS:
        for bad in BAD_IDS:
            argv = [
                a.replace("ID", _text(bad, sentinel)) if a.startswith("ID") else _text(a, sentinel)
                for a in verb
            ]
            code, out = _cli(argv, capsys)
            case = f"{' '.join(verb)} with {bad!r:.40}"
            assert code != 0 or verb in OTHER_ARGS, f"{case}\n{out}"
            assert "Traceback" not in out and "\x1b" not in out, f"{case}\n{out}"
            assert out.strip(), f"{case}: no sentence"
            assert len(out) < 3000 or verb in OTHER_ARGS, f"{case}: the id was echoed whole"
    assert list(sentinel.iterdir()) == []
    assert _outside(home, tmp_path) == before
    assert not list(home.root.rglob("*.install.lock")) or all(
        validate.APP_ID_RE.match(p.name.removesuffix(".install.lock"))
        for p in home.root.rglob("*.install.lock")
    )


# ---------------------------------------------------------------- the numbered findings


def test_git_revision_cannot_run_a_command(
    home: Home, sentinel: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Finding 1: `revision: --upload-pack=...` passed recipe check and ran on install."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    data = base_recipe()
    data["source"] = {"git": f"file://{repo}", "revision": f"--upload-pack=touch {sentinel}/pwned"}
    file = tmp_path / "x.yaml"
    file.write_text(yaml.safe_dump(data), "utf-8")
    code, out = _cli(["recipe", "check", str(file)], capsys)
    assert code == 1 and "source: revision must be a commit id, tag or branch name" in out
    code, out = _cli(["install", str(file), "--yes", "--hardware", PROFILE], capsys)
    assert code == 5 and "source: revision" in out  # BadRecipe
    # The clone itself refuses too (defence in depth), and ext:: is never a transport.
    with pytest.raises(DarkroomError, match="cannot be used"):
        appsource.clone(f"file://{repo}", f"--upload-pack=touch {sentinel}/pwned", tmp_path / "d1")
    with pytest.raises(DarkroomError, match="other transports"):
        appsource.clone(f"ext::sh -c touch% {sentinel}/pwned", "main", tmp_path / "d2")
    assert list(sentinel.iterdir()) == []


def test_git_clone_still_fetches_tags_branches_and_commits(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t.invalid",
    }
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], env=env, check=True)
    for args in (["commit", "-q", "--allow-empty", "-m", "x"], ["tag", "v1"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    for i, rev in enumerate(("v1", "main", commit)):
        assert appsource.clone(f"file://{repo}", rev, tmp_path / f"c{i}") == commit
    assert appsource.clone(str(repo), "v1", tmp_path / "local") == commit


def test_cli_app_ids_never_become_paths(
    home: Home, sentinel: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 3: `rollback /etc/passwd` made /etc/passwd.install.lock, `remove ../../x` wrote
    outside the data folder, `env repair /etc/passwd` gave NotADirectoryError."""
    monkeypatch.chdir(home.root)
    target = sentinel / "passwd"
    target.write_text("root:x:0:0\n")
    for argv in (
        ["rollback", str(target)],
        ["remove", "../../sentinel/x"],
        ["env", "repair", str(target)],
        ["env", "remove", "../../sentinel"],
        ["logs", "a" * 5000],
    ):
        code, out = _cli(argv, capsys)
        assert code != 0 and "is not an app name" in out and "Traceback" not in out, argv
    assert sorted(p.name for p in sentinel.iterdir()) == ["passwd"]
    # The home's own path helpers refuse too, whoever calls them.
    for helper in (home.env_dir, home.log_dir, home.run_file, home.output_dir, home.app_dir):
        with pytest.raises(DarkroomError, match="is not an app name"):
            helper("../../x")


def test_package_entries_are_requirements_never_options(tmp_path: Path) -> None:
    """Finding 4: `packages: ["--index-url=...", "-r/etc/shadow"]` reached uv as options."""
    for field, value in (
        (("packages",), ["--index-url=http://evil.invalid/simple", "-r/etc/shadow"]),
        (("backend_packages", "cpu"), ["-r/etc/shadow"]),
        (("torch", "packages"), ["--extra-index-url=http://evil.invalid"]),
    ):
        data = base_recipe()
        _set(data, field, value)
        with pytest.raises(RecipeError, match="installer option"):
            parse_recipe(yaml.safe_dump(data))
    # A spec recorded before (or built by hand) cannot smuggle one in either.
    spec = envs.EnvSpec(app="x", python="3.11", packages=["-r/etc/shadow"])
    with pytest.raises(DarkroomError, match="installer option"):
        envs._install_args(spec)
    assert envs._install_args(
        envs.EnvSpec(app="x", python="3.11", packages=["a>=1; python_version>'3'"])
    )


def test_manifest_shows_everything_that_runs_or_is_fetched(home: Home, tmp_path: Path) -> None:
    """Finding 5: the manifest left out launch.env (LD_PRELOAD), backend_args and template contents."""
    data = base_recipe()
    data["launch"]["env"] = {"LD_PRELOAD": "/tmp/evil.so"}
    data["launch"]["backend_args"] = {"cpu": ["--load", "/tmp/plugin.py"], "cuda": ["--gpu-hook"]}
    data["templates"] = [
        {"dest": "conf/run.yaml", "content": "hook: /tmp/hook.sh\nmodels: {models_dir}\n"}
    ]
    data["needs"] = ["restorer"]
    file = tmp_path / "x.yaml"
    file.write_text(yaml.safe_dump(data), "utf-8")
    settings = Settings(hf_endpoint="https://hf-mirror.example")
    pv = installer.preview(home, settings, str(file), hardware.load_profile(PROFILE))
    text = "\n".join(pv.manifest.lines())
    for expected in (
        "LD_PRELOAD=/tmp/evil.so",
        "--load /tmp/plugin.py",
        "--gpu-hook",
        "conf/run.yaml",
        "hook: /tmp/hook.sh",
        f"models: {home.models}",  # placeholders shown as what they become
        "git https://example.invalid/x.git at v1",
        "tinypkg>=1",
        "PyPI",
        "owner/name/a.safetensors at main from hf-mirror.example",
        "Starts too:  restorer",
        f"{envs.env_python(home, 'hostile')} -m hostile --load /tmp/plugin.py",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"


def test_size_beyond_any_file_is_refused_not_overflowing() -> None:
    """Finding 7: a 400-digit size passed recipe check, then OverflowError in the planner."""
    data = base_recipe()
    _set(data, (*FILE, "size"), 10**400)
    with pytest.raises(RecipeError, match="size: must be at most"):
        parse_recipe(yaml.safe_dump(data))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_recipe_check_on_a_fifo_and_plan_of_a_path_do_not_hang(tmp_path: Path) -> None:
    """Finding 7: `recipe check` on a FIFO blocked forever; `plan ../../../../tmp/x` hung."""
    fifo = tmp_path / "r.yaml"
    os.mkfifo(fifo)
    (tmp_path / "x.yaml").symlink_to(fifo)
    env = {**os.environ, "DARKROOM_HOME": str(tmp_path / "home")}
    run = [sys.executable, "-m", "manager"]
    out = subprocess.run(
        [*run, "recipe", "check", str(fifo), "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 1 and out.stdout.count("is not a regular file") == 2, (
        out.stdout + out.stderr
    )
    data = base_recipe()
    data["source"] = {"bundled": "generator"}
    (tmp_path / "x.yaml").unlink()
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(data), "utf-8")  # a recipe outside Darkroom
    from manager import bundled

    rel = os.path.relpath(tmp_path / "x", bundled.recipes_dir())
    out = subprocess.run(
        [*run, "plan", rel, "--hardware", PROFILE],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert (
        out.returncode != 0 and "is not an app name" in out.stderr and "Traceback" not in out.stderr
    )


def test_control_characters_in_recipe_text_never_reach_the_terminal() -> None:
    """Finding 7: ANSI escapes in a recipe's name reached the terminal raw."""
    data = base_recipe()
    data["name"] = "\x1b[2J\x1b[31mEvil\x1b[0m \u202eName"
    data["models"][0]["name"] = "M\x1b]0;owned\x07"
    recipe = parse_recipe(yaml.safe_dump(data))
    assert recipe.name == "Evil Name" and recipe.models[0].name == "M"


def test_weight_revision_and_needs_cannot_be_paths() -> None:
    """Finding 7: weight `revision: ../../..` and `needs: [../../x]` passed recipe check."""
    data = base_recipe()
    _set(data, (*FILE, "revision"), "../../..")
    data["needs"] = ["../../x"]
    found = [
        str(p)
        for p in pytest.raises(RecipeError, parse_recipe, yaml.safe_dump(data)).value.problems
    ]
    assert any("files[0].revision" in p for p in found) and any(": needs:" in p for p in found), (
        found
    )


def _tcp_states(port: int) -> list[str]:
    """The kernel's states of the TCP sockets on a local port (06 = TIME_WAIT)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return [f[3] for f in (r.split() for r in rows) if int(f[1].split(":")[1], 16) == port]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads TCP states from /proc")
def test_doctor_port_check_ignores_time_wait() -> None:
    """Finding 7: doctor said a port was used by another program when only TIME_WAIT was left."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the apps' servers do
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    assert not doctor._port_free("127.0.0.1", port)  # a live listener: busy
    conn.close()  # the side that closes first holds TIME_WAIT on the server's port
    assert client.recv(1) == b""
    client.close()
    server.close()
    deadline = time.monotonic() + 30
    while _tcp_states(port) != ["06"]:  # wait for the kernel to reach TIME_WAIT
        assert time.monotonic() < deadline, _tcp_states(port)
        time.sleep(0.01)
    assert doctor._port_free("127.0.0.1", port)


def test_gated_message_names_the_configured_mirror() -> None:
    """Finding 7: the gated-model message named huggingface.co even with hf_endpoint set."""
    err = http_error(
        401, "GatedRepo", "gated", "acme/model", "a.bin", "main", False, "https://hf-mirror.example"
    )
    assert "https://hf-mirror.example/acme/model" in err.hint and "huggingface.co" not in err.hint
    err = http_error(
        404, "RepoNotFound", "", "acme/model", "a.bin", "main", False, "https://hf-mirror.example"
    )
    assert "huggingface.co" not in err.hint


def test_stop_of_an_unknown_app_fails_with_a_sentence(
    home: Home, capsys: pytest.CaptureFixture
) -> None:
    """Finding 7: `stop nosuchapp` exited 0."""
    code, out = _cli(["stop", "nosuchapp"], capsys)
    assert code == 3 and "There is no app called 'nosuchapp'" in out  # NotFound


def test_stray_files_in_the_data_folder_are_not_taken_for_apps(
    home: Home, capsys: pytest.CaptureFixture
) -> None:
    """The home's path helpers refuse non-ids, so listings must skip files that are not apps."""
    (home.run / "Not An App.json").write_text("{}")
    (home.staging / "journal-Bad.Name.json").write_text("{}")
    assert installer.recover(home) == []
    code, out = _cli(["status"], capsys)
    assert code == 0 and "No apps are running" in out
