"""The workflow runner over real HTTP: real presets through real apps (the generator on a
tiny FLUX.1, and a small image app on the app kit), in the workflow recipe's own uv env;
a kill -9 mid-batch then a resume; a bad image; the CLI through the supervisor's run files;
the workflow app's own API and page."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from manager import batch, supervisor
from manager.config import Settings
from manager.errors import Cancelled
from manager.events import Cancellable, CancelToken, Event, Message, Progress, Stage
from manager.home import Home
from tests.fixtures.tinymodels import (
    AppEnv,
    AppProcess,
    choice_from_folder,
    http,
    models_json,
    start_app,
)
from tests.fixtures.tinyworkflow import (
    installed_runner_and_imgtool,
    make_images,
    start_imgtool,
    write_preset,
)


def processed(app: AppProcess) -> list[str]:
    log = app.log.parent / "processed.log"
    return log.read_text().split() if log.exists() else []


@pytest.fixture(scope="module")
def imgtool(workflow_env: AppEnv, tmp_path_factory) -> Iterator[AppProcess]:
    app = start_imgtool(workflow_env, tmp_path_factory.mktemp("imgtool"))
    try:
        yield app
    finally:
        app.stop()


def run_batch(
    env: AppEnv,
    preset: str | Path,
    source: Path | None,
    out: Path,
    *extra: str,
    urls: dict[str, str] | None = None,
    timeout: float = 180,
) -> tuple[int, list[dict]]:
    argv = [
        "-m",
        "workflow.cli",
        "run",
        str(preset),
        *([str(source)] if source else []),
        "--out",
        str(out),
        "--json",
        *extra,
    ]
    for app, url in (urls or {}).items():
        argv += ["--url", f"{app}={url}"]
    done = env.run(argv, timeout=timeout)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events, done.stderr[-3000:]
    return done.returncode, events


def ledger_rows(out: Path) -> dict[str, tuple[str, int, str]]:
    with sqlite3.connect(out / ".workflow" / "batch.sqlite") as db:
        return {
            r[0]: (r[1], r[2], r[3])
            for r in db.execute("SELECT id, status, attempts, error FROM items")
        }


# ---------------------------------------------------------------- tests


def test_bundled_presets_load_and_name_their_apps(workflow_env: AppEnv) -> None:
    code = (
        "import json; from workflow import presets\n"
        "print(json.dumps({n: [[s.app, s.task, s.name] for s in presets.load_preset(n).steps] "
        "for n in presets.bundled()}))"
    )
    done = workflow_env.run(["-c", code])
    assert done.returncode == 0, done.stderr
    steps = json.loads(done.stdout)
    assert set(steps) >= {"old-photo", "upscale-only", "colorize-only", "prompt-grid"}
    # defects and global restoration are one call: BOPBTL's scratch setting needs the mask
    assert [s[2] for s in steps["old-photo"]] == ["defects", "upscale", "faces", "colorize"]
    assert [s[0] for s in steps["old-photo"]] == ["restorer"] * 3 + ["colorizer"]
    assert steps["prompt-grid"] == [["generator", "generate", "generate"]]


def test_bad_preset_and_missing_app_are_sentences(workflow_env: AppEnv, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name\nsteps: []\n")
    code, events = run_batch(workflow_env, bad, tmp_path, tmp_path / "out")
    assert code == 2 and events[-1]["type"] == "error" and "bad.yaml" in events[-1]["message"]
    code, events = run_batch(
        workflow_env, "upscale-only", tmp_path, tmp_path / "out", "--home", str(tmp_path)
    )
    assert code == 2 and events[-1]["message"] == "restorer is not running; this preset needs it."
    assert "darkroom start restorer" in events[-1]["hint"]


def test_folder_batch_records_a_bad_image_and_goes_on(
    workflow_env: AppEnv, imgtool: AppProcess, tmp_path: Path
) -> None:
    src = tmp_path / "photos"
    make_images(src, 5, workflow_env, bad=["broken.jpg"])
    (src / "album").mkdir()
    make_images(src / "album", 1, workflow_env)
    (src / "img004.webp").write_bytes((src / "img004.png").read_bytes())  # same stem, other suffix
    out = tmp_path / "out"
    preset = write_preset(tmp_path, steps=2)
    code, events = run_batch(workflow_env, preset, src, out, urls={"imgtool": imgtool.url})
    assert code == 0, events[-3:]
    summary = events[-1]
    assert summary["type"] == "summary"
    assert (summary["total"], summary["done"], summary["failed"]) == (8, 7, 1)
    assert summary["failures"][0][0] == "broken.jpg" and "not an image" in summary["failures"][0][1]
    for name in [f"img{i:03d}" for i in range(4)] + ["album/img000", "img004.png", "img004.webp"]:
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["done"] == 8 and progress[-1]["total"] == 8 and progress[-1]["rate"] > 0
    items = {e["id"]: e for e in events if e["type"] == "item"}
    assert set(items["img000.png"]["steps"]) == {"invert1", "invert2"}
    # the report: every item, thumbnails before/after, the failure's reason, times per step
    page = (out / "report.html").read_text()
    assert page.count('<tr class="done">') == 7 and page.count('<tr class="failed">') == 1
    assert "broken.jpg" in page and "not an image" in page and "invert2 (s)" in page
    thumbs = list((out / ".workflow" / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 14
    # twice inverted is the original again: the steps chained
    check = workflow_env.run(
        [
            "-c",
            "import sys; from PIL import Image; a=Image.open(sys.argv[1]).convert('RGB');"
            "b=Image.open(sys.argv[2]).convert('RGB'); print(a.tobytes()==b.tobytes())",
            str(src / "img003.png"),
            str(out / "img003.png"),
        ]
    )
    assert check.stdout.strip() == "True", check.stderr
    # run again: nothing is redone, the failure stays recorded
    before = len(processed(imgtool))
    code, events = run_batch(workflow_env, preset, src, out, urls={"imgtool": imgtool.url})
    assert code == 0 and events[-1]["processed"] == 0 and events[-1]["skipped"] == 7
    assert len(processed(imgtool)) == before
    # a new image in the folder is picked up; --retry-failed tries the broken one again
    make_images(src / "new", 1, workflow_env)
    code, events = run_batch(
        workflow_env, preset, src, out, "--retry-failed", urls={"imgtool": imgtool.url}
    )
    assert events[-1]["processed"] == 2 and events[-1]["done"] == 8 and events[-1]["failed"] == 1
    assert ledger_rows(out)["broken.jpg"][1] == 2  # attempts


def test_kill9_mid_batch_then_resume_loses_nothing_and_redoes_nothing(
    workflow_env: AppEnv, imgtool: AppProcess, tmp_path: Path
) -> None:
    src, out = tmp_path / "photos", tmp_path / "out"
    names = make_images(src, 12, workflow_env)
    preset = write_preset(tmp_path, "slow", delay=0.15)
    log_before = len(processed(imgtool))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.Popen(
        [
            str(workflow_env.python),
            "-m",
            "workflow.cli",
            "run",
            str(preset),
            str(src),
            "--out",
            str(out),
            "--json",
            "--url",
            f"imgtool={imgtool.url}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["type"] == "progress" and event["done"] >= 4:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    first = ledger_rows(out)
    done_first = {k for k, v in first.items() if v[0] == "done"}
    assert 4 <= len(done_first) < 12
    stats = {k: (out / k).stat() for k in done_first}
    assert all(s.st_size > 0 for s in stats.values())

    code, events = run_batch(workflow_env, preset, src, out, urls={"imgtool": imgtool.url})
    assert code == 0
    resumed = [e for e in events if e["type"] == "stage" and e["stage"] == "resuming"]
    assert resumed and resumed[0]["message"].startswith(f"{len(done_first)} of 12 already done")
    rows = ledger_rows(out)
    assert set(rows) == set(names) and all(v[0] == "done" for v in rows.values())
    for k in done_first:  # finished before the kill: never touched again
        assert rows[k][1] == 1
        after = (out / k).stat()
        assert (after.st_ino, after.st_mtime_ns) == (stats[k].st_ino, stats[k].st_mtime_ns)
    # what the app saw: every image, the ones done before the kill once; at most the one in
    # flight at the kill twice
    seen = processed(imgtool)[log_before:]
    counts = {n: seen.count(n) for n in names}
    assert all(c >= 1 for c in counts.values()), counts
    assert all(counts[k] == 1 for k in done_first), counts
    assert sum(counts.values()) <= len(names) + 1, counts
    assert all(f"{n}" in (out / "report.html").read_text() for n in names)


def test_darkroom_run_finds_supervised_apps_through_run_files(
    workflow_env: AppEnv, home: Home, tmp_path: Path
) -> None:
    """`darkroom run` as a user types it: the engine in the workflow env (linked into this data
    folder as if installed), the image app started by the supervisor, found by its run file."""
    spec, tool = installed_runner_and_imgtool(workflow_env, home, tmp_path)
    src = tmp_path / "photos"
    make_images(src, 3, workflow_env, bad=["notes.png"])
    preset = write_preset(tmp_path)
    cli = [sys.executable, "-m", "manager", "run", str(preset), str(src)]
    try:
        supervisor.start(home, Settings(), spec)
        done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr  # one image failed
        out = home.root / "outputs" / "workflow" / "invert-test-photos"
        assert "invert-test: 3 done, 1 failed of 4" in done.stdout
        assert f"Report:  {out / 'report.html'}" in done.stdout
        assert "failed: notes.png: input: the file is not an image" in done.stdout
        assert "images: 4 / 4 (100%)" in done.stderr
        assert sorted(p.name for p in out.glob("*.png")) == [
            "img000.png",
            "img001.png",
            "img002.png",
        ]
        again = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=120)
        events = [
            json.loads(line) for line in again.stdout.splitlines() if line.startswith('{"type"')
        ]
        assert any(e["type"] == "Stage" and e["stage"] == "resuming" for e in events), again.stdout
        assert (tool / "processed.log").read_text().split() == [
            "img000.png",
            "img001.png",
            "img002.png",
        ]
    finally:
        supervisor.stop(home, "imgtool")


def test_batch_run_in_process_reports_typed_events_and_a_cancel_stops_it(
    workflow_env: AppEnv, home: Home, tmp_path: Path
) -> None:
    """The core call both faces make (manager.batch.run): typed events through the reporter,
    the summary back; a cancel on the reporter's token stops the engine after the image in
    flight, and the same request again finishes the rest without redoing any."""
    spec, tool = installed_runner_and_imgtool(workflow_env, home, tmp_path)
    src = tmp_path / "photos"
    make_images(src, 6, workflow_env)
    request = batch.BatchRequest(preset=str(write_preset(tmp_path, delay=0.5)), input=str(src))
    token = CancelToken()
    seen: list[Event] = []

    def cancel_after_first_image(event: Event) -> None:
        seen.append(event)
        if isinstance(event, Progress) and event.done >= 1:
            token.cancel()

    try:
        supervisor.start(home, Settings(), spec)
        with pytest.raises(Cancelled):
            batch.run(home, request, Cancellable(cancel_after_first_image, token))
        assert all(isinstance(e, Stage | Progress | Message) for e in seen)
        first = (tool / "processed.log").read_text().split()
        assert 1 <= len(first) < 6, first

        events: list[Event] = []
        summary = batch.run(home, request, events.append)
        assert isinstance(summary, batch.BatchSummary)
        assert (summary.done, summary.failed, summary.total) == (6, 0, 6)
        assert summary.processed == 6 - len(first)
        assert any(isinstance(e, Stage) and e.stage == "resuming" for e in events)
        assert [e.total for e in events if isinstance(e, Progress)][-1] == 6
        done = (tool / "processed.log").read_text().split()
        assert sorted(done) == [f"img{i:03d}.png" for i in range(6)]  # none twice
    finally:
        supervisor.stop(home, "imgtool")


def test_prompt_grid_through_the_generator(
    workflow_env: AppEnv, generator_env: AppEnv, tiny_flux, tmp_path: Path
) -> None:
    gen = start_app(
        generator_env,
        "generator",
        tmp_path / "gen",
        models_json({"flux-schnell": choice_from_folder(tiny_flux, "fp32")}),
    )
    try:
        gen.wait_ready()
        src = tmp_path / "prompts"
        src.mkdir()
        (src / "prompts.txt").write_text("a red apple\n# a comment\n\na blue door\n")
        out = tmp_path / "grid"
        code, events = run_batch(
            workflow_env,
            "prompt-grid",
            src,
            out,
            "--set",
            "upscale.width=64",
            urls={"generator": gen.url},
        )
        assert (
            code == 2 and events[-1]["message"] == "The preset prompt-grid has no step 'upscale'."
        )
        code, events = run_batch(
            workflow_env,
            "prompt-grid",
            src,
            out,
            "--set",
            "generate.width=64",
            "--set",
            "generate.height=64",
            "--set",
            "generate.steps=1",
            urls={"generator": gen.url},
        )
        assert code == 0, events[-3:]
        summary = events[-1]
        assert (summary["total"], summary["done"], summary["failed"]) == (8, 8, 0)
        files = sorted(p.name for p in out.glob("*.png"))
        assert files[0] == "001-a-red-apple-seed1.png" and files[-1] == "002-a-blue-door-seed4.png"
        code_, jobs, _ = gen.get("/api/jobs")
        params = sorted((j["params"]["prompt"], j["params"]["seed"]) for j in jobs["jobs"])
        assert params == sorted(
            (p, s) for p in ("a red apple", "a blue door") for s in (1, 2, 3, 4)
        )
        assert all(j["params"]["width"] == 64 for j in jobs["jobs"])
        page = (out / "report.html").read_text()
        assert "a blue door" in page and page.count('<tr class="done">') == 8
    finally:
        gen.stop()


def test_workflow_app_serves_batch_and_its_page(
    workflow_env: AppEnv, imgtool: AppProcess, tmp_path: Path
) -> None:
    """The workflow app itself: POST /api/batch (apps found through run files in its data
    folder), the report among its outputs, and its Gradio page."""
    root = tmp_path / "wfhome"
    (root / "run").mkdir(parents=True)
    (root / "run" / "imgtool.json").write_text(
        json.dumps({"app": "imgtool", "status": "ready", "url": imgtool.url})
    )
    src = tmp_path / "photos"
    make_images(src, 2, workflow_env)
    preset = write_preset(tmp_path)
    app = start_app(workflow_env, "workflow", root, "")
    try:
        app.wait_ready(60)
        code, info, _ = app.get("/api/info")
        assert code == 200 and "old-photo" in info["presets"] and info["tasks"] == ["batch"]
        code, body, _ = app.post("/api/batch?wait=true", {"preset": "old-photo", "input": str(src)})
        assert code == 400 and "restorer is not running" in body["error"]
        code, job, _ = app.post("/api/batch?wait=true", {"preset": str(preset), "input": str(src)})
        assert code == 200, job
        assert job["result"]["done"] == 2 and job["result"]["urls"] == [
            "/api/outputs/invert-test-photos/report.html"
        ]
        code, _, page = app.get(job["result"]["urls"][0])
        assert code == 200 and b"invert-test" in page
        code, _, html_page = http("GET", app.url + "/")
        assert code == 200 and b"gradio" in html_page.lower()
    finally:
        app.stop()


def test_ray_local_cluster_two_workers_share_the_batch(
    workflow_env: AppEnv, tmp_path: Path
) -> None:
    """--ray local with 2 workers over 2 replicas of the app: every image once, both workers
    used, the ledger (on the driver) complete; a rerun on Ray redoes nothing."""
    apps = [start_imgtool(workflow_env, tmp_path / f"replica{i}") for i in range(2)]
    try:
        src, out = tmp_path / "photos", tmp_path / "out"
        names = make_images(src, 8, workflow_env, bad=["bad.png"])
        preset = write_preset(tmp_path, delay=0.2)
        argv = [
            "-m",
            "workflow.cli",
            "run",
            str(preset),
            str(src),
            "--out",
            str(out),
            "--json",
            "--ray",
            "local",
            "--workers",
            "2",
        ] + [x for a in apps for x in ("--url", f"imgtool={a.url}")]
        done = workflow_env.run(argv, timeout=180, env={"RAY_USAGE_STATS_ENABLED": "0"})
        events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert done.returncode == 0, done.stderr[-3000:]
        summary = events[-1]
        assert (summary["total"], summary["done"], summary["failed"], summary["workers"]) == (
            9,
            8,
            1,
            2,
        )
        assert any(e["type"] == "stage" and e["stage"] == "ray" for e in events)
        workers = {e["worker"] for e in events if e["type"] == "item" and e["status"] == "done"}
        assert workers == {0, 1}
        seen = processed(apps[0]) + processed(apps[1])
        assert sorted(seen) == sorted(n for n in names if n != "bad.png")
        assert processed(apps[0]) and processed(apps[1])
        rows = ledger_rows(out)
        assert all(v[1] == 1 for v in rows.values()) and rows["bad.png"][0] == "failed"
        assert sorted(p.name for p in out.glob("*.png")) == sorted(
            n for n in names if n != "bad.png"
        )
    finally:
        for app in apps:
            app.stop()


def test_old_photo_preset_through_restorer_and_colorizer(
    workflow_env: AppEnv, request, tmp_path: Path
) -> None:
    """The bundled old-photo preset, unchanged, through the real restorer and colorizer apps
    (random-weight checkpoints, CPU): defects (+ global) -> upscale -> faces -> colorize, the
    global restoration left out where BOPBTL's restoration is not installed."""
    from tests.fixtures.tinyrestore import restore_models

    restorer_env = request.getfixturevalue("restorer_env")
    colorizer_env = request.getfixturevalue("colorizer_env")
    built = request.getfixturevalue("tiny_restore")
    photos = request.getfixturevalue("restore_photos")
    src = tmp_path / "album"
    src.mkdir()
    for key in ("scratched", "grey"):
        (src / photos[key].name).write_bytes(photos[key].read_bytes())
    (src / "torn.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    restorer = start_app(
        restorer_env,
        "restorer",
        tmp_path / "restorer",
        models_json(
            # the restorer's default install: its only upscaler is the x4 one
            restore_models(built, ["gfpgan", "retinaface", "parsenet", "esrgan-x4", "lama"]),
            "gfpgan",
        ),
    )
    colorizer = start_app(
        colorizer_env,
        "colorizer",
        tmp_path / "colorizer",
        models_json(restore_models(built, ["ddcolor-tiny"])),
    )
    try:
        restorer.wait_ready(300)
        colorizer.wait_ready(300)
        import base64

        code, job, _ = colorizer.post(
            "/api/colorize?wait=true",
            {
                "image": base64.b64encode((src / "grey.png").read_bytes()).decode(),
                "render_size": 128,
            },
        )
        # The colorizer must work by itself first; a failure here is a real failure, not an xfail.
        assert code == 200, (
            f"the colorizer app fails on a plain photo by itself: {job and job.get('error')}"
        )
        out = tmp_path / "out"
        # random-weight RetinaFace "finds" dozens of faces: name the one drawn face instead
        # (faces come after the upscale, as in the seed's chain, so the box is 4x the drawn one)
        code, events = run_batch(
            workflow_env,
            "old-photo",
            src,
            out,
            "--set",
            "faces.face_boxes=[[176, 80, 336, 288]]",  # on the 4x upscaled photo
            "--set",
            "colorize.render_size=128",
            timeout=600,
            urls={"restorer": restorer.url, "colorizer": colorizer.url},
        )
        assert code == 0, events[-3:]
        summary = events[-1]
        assert (summary["total"], summary["done"], summary["failed"]) == (3, 2, 1), summary[
            "failures"
        ]
        assert summary["failures"][0][0] == "torn.jpg"
        items = {e["id"]: e for e in events if e["type"] == "item" and e["status"] == "done"}
        assert set(items["grey.png"]["steps"]) == {"defects", "upscale", "faces", "colorize"}
        # upscaled 4x with the default install's upscaler: the preset works as installed
        size = workflow_env.run(
            [
                "-c",
                "import sys; from PIL import Image; print(*Image.open(sys.argv[1]).size, "
                "*Image.open(sys.argv[2]).size)",
                str(src / "grey.png"),
                str(out / "grey.png"),
            ]
        )
        w, h, w2, h2 = map(int, size.stdout.split())
        assert (w2, h2) == (4 * w, 4 * h)
        _, jobs, _ = colorizer.get("/api/jobs")
        assert len(jobs["jobs"]) == 3  # the check above, and one per photo
        assert (out / "report.html").read_text().count("<img") == 4
    finally:
        restorer.stop()
        colorizer.stop()
