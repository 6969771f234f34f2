"""The weight store against the local test hub: real HTTP, real files, injected faults."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

from manager import weights
from manager.config import Settings
from manager.errors import DarkroomError
from manager.events import Event, Message, Progress
from manager.home import Home
from manager.recipe import ModelFile
from manager.state import InstalledApp, InstalledModel, State
from manager.weights.store import RepoStore
from tests.fixtures.hub import LocalHub

W1 = os.urandom(3_000_000)
W2 = os.urandom(2_000_000)
SHA1 = hashlib.sha256(W1).hexdigest()


def spec(path: str, repo: str = "acme/flux", **kw) -> ModelFile:
    return ModelFile(repo=repo, path=path, size=kw.pop("size", 1), **kw)


def settings(hub: LocalHub, **kw) -> Settings:
    return Settings(hf_endpoint=hub.url, **kw)


@pytest.fixture
def repo(hub: LocalHub) -> LocalHub:
    hub.add_files(
        "acme/flux",
        {
            "model_index.json": b'{"_class_name": "FluxPipeline"}',
            "q8.gguf": W1,
            "q4.gguf": W2,
            "unused.gguf": os.urandom(500_000),
            "vae/config.json": b'{"a": 1}',
            "vae/diffusion_pytorch_model.safetensors": W2,
        },
    )
    return hub


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pull_fetches_only_the_named_files_into_the_hf_layout(home: Home, repo: LocalHub) -> None:
    files = [spec("q8.gguf", sha256=SHA1), spec("vae/*")]
    local = weights.pull(home, settings(repo), files)
    assert sorted(f.path for f in local) == [
        "q8.gguf",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    q8 = next(f for f in local if f.path == "q8.gguf")
    assert q8.local_path.read_bytes() == W1 and q8.sha256 == SHA1 and q8.size == len(W1)
    assert q8.commit == repo.commit("acme/flux")
    assert q8.installed().revision == q8.commit
    for other in ("q4.gguf", "unused.gguf", "model_index.json"):
        assert repo.stats(other).requests == 0
    # huggingface_hub itself finds the files offline in Darkroom's store: same layout
    found = hf_hub_download("acme/flux", "q8.gguf", cache_dir=home.models, local_files_only=True)
    assert Path(found).read_bytes() == W1
    assert not list(home.models.rglob("*.incomplete"))


def test_progress_per_file_and_total(home: Home, repo: LocalHub) -> None:
    events: list[Event] = []
    weights.pull(home, settings(repo), [spec("q8.gguf"), spec("q4.gguf")], events.append)
    progress = [e for e in events if isinstance(e, Progress)]
    per_file = {e.item for e in progress if e.item}
    assert per_file == {"q8.gguf", "q4.gguf"}
    last_total = [e for e in progress if not e.item][-1]
    assert last_total.done == last_total.total == len(W1) + len(W2)
    for name, data in (("q8.gguf", W1), ("q4.gguf", W2)):
        assert [e for e in progress if e.item == name][-1].done == len(data)
    assert any(e.rate > 0 for e in progress)


def test_second_pull_downloads_nothing(home: Home, repo: LocalHub) -> None:
    weights.pull(home, settings(repo), [spec("q8.gguf")])
    repo.reset_stats()
    plan = weights.plan_download(home, [spec("q8.gguf")], settings(repo))
    assert plan.download_bytes == 0 and plan.files[0].present
    weights.pull(home, settings(repo), [spec("q8.gguf")])
    assert repo.stats("q8.gguf").requests == 0


def test_dropped_connection_resumes_from_the_last_byte(home: Home, repo: LocalHub) -> None:
    repo.faults.drop_after("q8.gguf", 1_000_000)
    [f] = weights.pull(home, settings(repo), [spec("q8.gguf", sha256=SHA1)])
    assert f.local_path.read_bytes() == W1
    stats = repo.stats("q8.gguf")
    assert stats.ranges == ["", "bytes=1000000-"]
    assert stats.bytes_served == len(W1)  # not one byte fetched twice


def test_parallel_files_and_resume_after_a_stalled_connection(home: Home, repo: LocalHub) -> None:
    release = repo.faults.pause_after("q8.gguf", 200_000)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            weights.pull(
                home, settings(repo, parallel_downloads=2), [spec("q8.gguf"), spec("q4.gguf")]
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    q4_blob = RepoStore(home.models, "acme/flux").blob(hashlib.sha256(W2).hexdigest())
    deadline = time.monotonic() + 30
    while not q4_blob.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert q4_blob.exists(), "the second file should finish while the first one is stalled"
    release.set()
    worker.join(60)
    assert not errors
    assert repo.stats("q8.gguf").ranges == ["", "bytes=200000-"]
    assert repo.stats("q8.gguf").bytes_served == len(W1)


def test_damaged_download_is_fetched_again_once(home: Home, repo: LocalHub) -> None:
    repo.faults.corrupt("q8.gguf", times=1)
    events: list[Event] = []
    [f] = weights.pull(home, settings(repo), [spec("q8.gguf")], events.append)
    assert f.local_path.read_bytes() == W1
    assert repo.stats("q8.gguf").requests == 2
    assert any(isinstance(e, Message) and "damaged" in e.text for e in events)


def test_damaged_twice_fails_and_leaves_no_bad_file(home: Home, repo: LocalHub) -> None:
    repo.faults.corrupt("q8.gguf", times=2)
    with pytest.raises(DarkroomError) as err:
        weights.pull(home, settings(repo), [spec("q8.gguf")])
    assert "damaged twice" in err.value.message
    store = RepoStore(home.models, "acme/flux")
    assert not any(p.is_file() for p in (store.root / "blobs").glob("*"))
    assert not (store.root / "snapshots").exists() or not any(
        (store.root / "snapshots").rglob("q8.gguf")
    )


def test_recipe_pin_that_differs_from_the_hub_refuses_before_downloading(
    home: Home, repo: LocalHub
) -> None:
    with pytest.raises(DarkroomError) as err:
        weights.pull(home, settings(repo), [spec("q8.gguf", sha256="0" * 64)])
    assert "not the file the recipe expects" in err.value.message
    assert repo.stats("q8.gguf").requests == 0


def test_gated_repo_messages_say_what_to_do_and_never_show_the_token(
    home: Home, hub: LocalHub
) -> None:
    hub.add_file("acme/gated", "w.safetensors", W2)
    hub.gate("acme/gated", token="hf_secret_good")
    hub.add_token("hf_secret_other")
    files = [spec("w.safetensors", repo="acme/gated")]
    for token, words in (
        (None, "no Hugging Face token is set"),
        ("hf_secret_other", "not been granted access"),
        ("hf_secret_typo", "was refused"),
    ):
        events: list[Event] = []
        with pytest.raises(DarkroomError) as err:
            weights.pull(home, settings(hub, hf_token=token), files, events.append)
        text = str(err.value) + "".join(repr(e) for e in events)
        assert words in text
        assert (
            f"{hub.url}/acme/gated" in err.value.hint
        )  # the hub in use, not always huggingface.co
        assert "darkroom config set hf_token" in err.value.hint
        assert "hf_secret" not in text
    [f] = weights.pull(home, settings(hub, hf_token="hf_secret_good"), files)
    assert f.local_path.read_bytes() == W2


def test_disk_precheck_refuses_with_numbers(home: Home, hub: LocalHub) -> None:
    hub.add_placeholder("acme/huge", "huge.gguf", size=10**15)
    with pytest.raises(DarkroomError) as err:
        weights.pull(home, settings(hub), [spec("huge.gguf", repo="acme/huge")])
    assert "Not enough disk space" in err.value.message and "GB" in err.value.message
    assert "1000000.0 GB" in err.value.message
    assert hub.stats("huge.gguf").requests == 0


def test_no_network_gives_a_sentence(home: Home) -> None:
    s = Settings(hf_endpoint=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(DarkroomError) as err:
        weights.pull(home, s, [spec("q8.gguf")])
    assert "Could not reach the Hugging Face hub" in err.value.message


def test_offline_mode_and_a_dead_network_use_the_store(home: Home, repo: LocalHub) -> None:
    first = weights.pull(home, settings(repo), [spec("q8.gguf"), spec("vae/*")])
    dead = f"http://127.0.0.1:{closed_port()}"
    offline = weights.pull(
        home, Settings(hf_endpoint=dead, offline=True), [spec("q8.gguf"), spec("vae/*")]
    )
    assert sorted(f.local_path for f in offline) == sorted(f.local_path for f in first)
    events: list[Event] = []
    again = weights.pull(home, Settings(hf_endpoint=dead), [spec("q8.gguf")], events.append)
    assert again[0].local_path == next(f.local_path for f in first if f.path == "q8.gguf")
    assert any(isinstance(e, Message) and e.level == "warning" for e in events)
    with pytest.raises(DarkroomError) as err:
        weights.pull(home, Settings(hf_endpoint=dead, offline=True), [spec("q4.gguf")])
    assert "Offline mode is on" in err.value.message


def test_plan_download_counts_missing_and_partial_bytes(home: Home, repo: LocalHub) -> None:
    weights.pull(home, settings(repo), [spec("q4.gguf")])
    store = RepoStore(home.models, "acme/flux")
    store.incomplete(SHA1).write_bytes(W1[:1000])
    plan = weights.plan_download(
        home, [spec("q8.gguf"), spec("q4.gguf"), spec("vae/*")], settings(repo)
    )
    assert len(plan.files) == 4
    assert plan.total_bytes == len(W1) + 2 * len(W2) + len(b'{"a": 1}')
    # the vae weights are the same bytes as q4.gguf: one blob, already there
    assert plan.download_bytes == len(W1) - 1000 + len(b'{"a": 1}')
    assert plan.enough_disk
    local_only = weights.plan_download(
        home, [spec("q8.gguf", size=123), spec("q4.gguf")], remote=False
    )
    assert local_only.download_bytes == 123 and not local_only.exact


def test_verify_finds_damage_and_fix_lets_pull_repair_it(home: Home, repo: LocalHub) -> None:
    files = [spec("q8.gguf", sha256=SHA1), spec("vae/*")]
    local = weights.pull(home, settings(repo), files)
    assert weights.verify(home, files) == []
    small = next(f for f in local if f.path == "vae/config.json")
    blob = small.local_path.resolve()
    blob.write_bytes(b'{"a": 2}')  # same size, other bytes
    q8_blob = next(f for f in local if f.path == "q8.gguf").local_path.resolve()
    q8_blob.unlink()
    problems = weights.verify(home, files, remove_bad=True)
    assert sorted((p.kind, p.path) for p in problems) == [
        ("corrupt", "vae/config.json"),
        ("missing", "q8.gguf"),
    ]
    assert weights.verify(home, [f.installed() for f in local], full=False) != []
    weights.pull(home, settings(repo), files)
    assert weights.verify(home, files) == []


def test_import_adopts_a_local_file_without_downloading(
    home: Home, repo: LocalHub, tmp_path: Path
) -> None:
    mine = tmp_path / "my-q8.gguf"
    mine.write_bytes(W1)
    local = weights.import_file(home, mine, spec("q8.gguf", sha256=SHA1), settings(repo))
    assert local.local_path.read_bytes() == W1
    assert local.local_path.resolve().stat().st_ino == mine.stat().st_ino  # hardlinked, not copied
    weights.pull(home, settings(repo), [spec("q8.gguf", sha256=SHA1)])
    assert repo.stats("q8.gguf").requests == 0
    wrong = tmp_path / "wrong.gguf"
    wrong.write_bytes(W2)
    with pytest.raises(DarkroomError) as err:
        weights.import_file(home, wrong, spec("q8.gguf", sha256=SHA1), settings(repo))
    assert "is not acme/flux/q8.gguf" in err.value.message


def test_import_without_a_pin_checks_against_the_hub(
    home: Home, repo: LocalHub, tmp_path: Path
) -> None:
    mine = tmp_path / "q4.gguf"
    mine.write_bytes(W2)
    local = weights.import_file(home, mine, spec("q4.gguf"), settings(repo))
    assert local.commit == repo.commit("acme/flux")
    with pytest.raises(DarkroomError) as err:
        weights.import_file(home, mine, spec("q8.gguf"), settings(repo))
    assert "expected one" in err.value.message
    with pytest.raises(DarkroomError) as offline:
        weights.import_file(home, mine, spec("unused.gguf"), Settings(offline=True))
    assert "cannot check" in offline.value.message


def _state_using(files: list[weights.LocalFile], app: str = "generator") -> State:
    return State(
        apps={
            app: InstalledApp(
                app=app,
                version="1",
                models=[
                    InstalledModel(model="flux", variant="q8", files=[f.installed() for f in files])
                ],
            )
        }
    )


def test_gc_removes_only_what_no_app_uses_after_showing_it(home: Home, repo: LocalHub) -> None:
    keep = weights.pull(home, settings(repo), [spec("q8.gguf"), spec("vae/*")])
    drop = weights.pull(home, settings(repo), [spec("q4.gguf")])
    # a weight shared by two files (q4 and the vae safetensors are the same bytes) stays
    state = _state_using(keep)
    store = RepoStore(home.models, "acme/flux")
    store.incomplete("f" * 64).write_bytes(b"partial")
    preview = weights.gc(home, state, dry_run=True)
    assert not preview.deleted
    assert {i.name for i in preview.items} == {"f" * 64 + ".incomplete"}
    assert drop[0].local_path.exists()
    # now nothing uses the vae either
    state = _state_using([f for f in keep if f.path == "q8.gguf"])
    preview = weights.gc(home, state, dry_run=True)
    names = {p for i in preview.items for p in i.paths}
    assert {"vae/config.json", "vae/diffusion_pytorch_model.safetensors", "q4.gguf"} <= names
    assert preview.freed_bytes == len(W2) + len(b'{"a": 1}') + len(b"partial")
    done = weights.gc(home, state, dry_run=False)
    assert done.deleted and done.freed_bytes == preview.freed_bytes
    assert keep[0].local_path.read_bytes() == W1
    assert not drop[0].local_path.exists() and not os.path.lexists(drop[0].local_path)
    listing = weights.list_store(home, state)
    assert [(e.path, e.apps) for e in listing] == [("q8.gguf", ["generator"])]
    assert weights.gc(home, state).items == []


def test_datasets_pull_into_their_own_folder(home: Home, hub: LocalHub) -> None:
    hub.add_file("acme/faces", "data/lut.bin", W2, repo_type="dataset")
    [f] = weights.pull(
        home,
        settings(hub),
        [ModelFile(repo="acme/faces", path="data/lut.bin", size=1, repo_type="dataset")],
    )
    assert "datasets--acme--faces" in str(f.local_path) and f.local_path.read_bytes() == W2


def _flip_a_byte(path: Path, at: int = 1000) -> None:
    """Damage a file in place the way a bad disk or a stray write does: one byte, same size."""
    with open(path, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_a_damaged_or_truncated_blob_is_fetched_again_not_trusted_by_size(
    home: Home, repo: LocalHub
) -> None:
    files = [spec("q8.gguf", sha256=SHA1), spec("vae/*")]
    local = weights.pull(home, settings(repo), files)
    q8 = next(f for f in local if f.path == "q8.gguf").local_path
    small = next(f for f in local if f.path == "vae/config.json").local_path
    _flip_a_byte(q8.resolve())
    with open(small.resolve(), "r+b") as fh:
        fh.truncate(3)
    plan = weights.plan_download(home, files, settings(repo))
    assert plan.download_bytes == len(W1) + len(b'{"a": 1}')
    assert sorted(f.remote.path for f in plan.missing) == ["q8.gguf", "vae/config.json"]
    weights.pull(home, settings(repo), files)
    assert q8.read_bytes() == W1 and small.read_bytes() == b'{"a": 1}'
    assert repo.stats("q8.gguf").requests == 2 and repo.stats("vae/config.json").requests == 2
    assert repo.stats("vae/diffusion_pytorch_model.safetensors").requests == 1
    assert weights.verify(home, files) == []


def test_a_damaged_blob_is_refused_offline(home: Home, repo: LocalHub) -> None:
    [f] = weights.pull(home, settings(repo), [spec("q8.gguf")])
    _flip_a_byte(f.local_path.resolve())
    with pytest.raises(DarkroomError) as err:
        weights.pull(home, Settings(offline=True), [spec("q8.gguf")])
    assert "damaged" in err.value.message and "offline" in err.value.hint


def test_verification_is_recorded_and_trusted_only_while_the_file_is_unchanged(
    home: Home, repo: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from manager.weights import record as weights_record

    local = weights.pull(home, settings(repo), [spec("q8.gguf", sha256=SHA1), spec("vae/*")])
    installed = [f.installed() for f in local]
    hashed: list[Path] = []
    real = weights_record.hash_of
    monkeypatch.setattr(weights_record, "hash_of", lambda p, a: hashed.append(p) or real(p, a))
    # The download hashed every byte as it came; a start-time check reads none of them again.
    assert weights.verify(home, installed, recorded=True) == []
    assert hashed == []
    record = weights_record.record_file(home)
    assert record.is_file() and len(json.loads(record.read_text())) == 3  # two files share a blob
    q8 = next(f for f in local if f.path == "q8.gguf").local_path.resolve()
    os.link(q8, home.root / "library-link")  # a library hardlink changes nothing
    assert weights.verify(home, installed, recorded=True) == [] and hashed == []
    _flip_a_byte(q8)
    [problem] = weights.verify(home, installed, recorded=True)
    assert problem.kind == "corrupt" and problem.path == "q8.gguf" and hashed == [q8]
    with open(q8, "r+b") as fh:
        fh.truncate(100)
    [problem] = weights.verify(home, installed, recorded=True)
    assert "cut short (100 of 3,000,000 bytes)" in problem.message
