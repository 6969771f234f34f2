"""A cancel is a real stop in-process: the running uv is killed (not waited for), a download
stuck on the network is abandoned, and what was staged is gone. Each test waits on what the
other side sees (a request that arrived, a connection that closed), never on a clock."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from manager import envs
from manager.config import Settings
from manager.errors import Cancelled
from manager.events import Cancellable, CancelToken, Event, Stage
from manager.home import Home


class HangingIndex:
    """A package index that takes requests and never answers: uv waits on it until killed.
    `asked` is set when a request arrives, `gone` when its connection closes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.asked = threading.Event()
        self.gone = threading.Event()
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/simple"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.asked.set()
            while conn.recv(4096):  # until the client closes (or dies)
                pass
            self.gone.set()

    def close(self) -> None:
        """Stop listening for real: closing a socket that another thread is blocked in accept()
        on leaves it listening (Linux) until one more client comes, which would then hang on
        this index in a later test that got its port number. shutdown() wakes the accept."""
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch):
    # uv would give up on its own after its HTTP timeout; only a kill may end it here.
    monkeypatch.setenv("UV_HTTP_TIMEOUT", "3600")
    server = HangingIndex()
    yield server
    server.close()


def test_cancel_kills_the_running_uv_and_discards_the_staged_env(
    home: Home, index: HangingIndex
) -> None:
    token = CancelToken()
    events: list[Event] = []
    outcome: list[BaseException | None] = []
    spec = envs.EnvSpec(app="hang", python="3.11", packages=["darkroom-never-answered"])

    def build() -> None:
        try:
            envs.build(home, Settings(index_url=index.url), spec, Cancellable(events.append, token))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    assert index.asked.wait(120), "uv never asked the index"
    staged = [p for p in home.staging.iterdir() if p.name.startswith("env-hang-")]
    assert staged, "the env is being built in staging/"
    token.cancel()
    # uv is killed by the cancel: its connection to the index drops (a waiting uv would hold
    # it for its whole HTTP timeout and retries).
    assert index.gone.wait(60), "uv kept running after the cancel"
    thread.join(60)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome
    assert outcome[0].exit_code == 130
    assert not any(p.exists() for p in staged)
    assert not envs.env_dir(home, "hang").exists() and envs.info(home, "hang") is None
    assert any(isinstance(e, Stage) and e.stage == "resolving" for e in events)


def test_a_cancelled_token_stops_work_at_its_next_event_and_runs_hooks_once() -> None:
    token = CancelToken()
    seen: list[Event] = []
    report = Cancellable(seen.append, token)
    report(Stage("t", "one"))
    calls: list[str] = []
    with token.on_cancel(lambda: calls.append("hook")):
        token.cancel()
        token.cancel()
    assert calls == ["hook"]
    with pytest.raises(Cancelled):
        report(Stage("t", "two"))
    assert [e.stage for e in seen] == ["one"]
    late: list[str] = []
    with token.on_cancel(lambda: late.append("late")):  # registered after the cancel: runs at once
        pass
    assert late == ["late"]


def test_a_failed_download_stops_the_env_build_at_once(
    home: Home, index: HangingIndex, hub
) -> None:
    """Env and weights run side by side; when the weights fail (a gated model) the build is
    stopped there and then, instead of finishing a build that is thrown away."""
    from manager import installer
    from manager.errors import Gated
    from manager.recipe import ModelFile

    hub.add_file("acme/gated", "w.bin", b"w" * 100)
    hub.gate("acme/gated", token="hf_secret_good")
    spec = envs.EnvSpec(app="hang", python="3.11", packages=["darkroom-never-answered"])
    files = [ModelFile(repo="acme/gated", path="w.bin", size=100)]

    def report(event: Event) -> None:
        if isinstance(event, Stage) and event.source == "weights" and event.stage == "resolving":
            assert index.asked.wait(120), "uv never asked the index"  # the build is under way

    raised: list[BaseException] = []

    def install_part() -> None:
        try:
            installer.build_and_pull(
                home, Settings(index_url=index.url, hf_endpoint=hub.url), spec, files, report
            )
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=install_part, daemon=True)
    thread.start()
    thread.join(120)  # uv waits an hour on this index: only a kill ends the build in time
    assert not thread.is_alive(), "the env build was still running"
    assert len(raised) == 1 and isinstance(raised[0], Gated), raised
    assert index.gone.wait(60)
    assert not [p for p in home.staging.iterdir() if p.name.startswith("env-hang-")]
    assert envs.info(home, "hang") is None
