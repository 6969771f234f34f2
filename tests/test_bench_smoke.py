"""Every bench in bench/ run as a real subprocess with --smoke (smallest sizes, one round), so
a bench that no longer works fails here and not in front of someone reading its figures.

Each must exit 0 and print its closing line `bench NAME: OK (...)`, which it prints only
after checking the work it timed (install done, bytes verified, images written, batch
complete). The tests named `..._fails_when_...` break a fixture a bench depends on, in a
copy of the checkout, and see the bench fail with the reason: proof that a figure cannot be
printed over work that did not happen. Timings are printed, never judged here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench._stats import EXIT_FAILED, EXIT_MISSED, Report, Spread, against, ratios

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 900  # only stops a hung bench; nothing here depends on how fast it runs


def run_bench(script: str, *args: str, root: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DARKROOM_HOME")}
    return subprocess.run(
        [sys.executable, str(root / "bench" / script), "--smoke", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        env=env,
    )


def ok_line(done: subprocess.CompletedProcess, name: str) -> str:
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(f"bench {name}: ")]
    assert lines and lines[-1].startswith(f"bench {name}: OK ("), out[-4000:]
    return lines[-1]


def failed_line(done: subprocess.CompletedProcess, name: str) -> str:
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    assert f"bench {name}: OK" not in done.stdout, out[-4000:]
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(f"bench {name}: FAILED: ")]
    assert lines, out[-4000:]
    return lines[-1]


@pytest.fixture
def broken_checkout(tmp_path: Path):
    """A copy of this checkout's sources in which a test edits one fixture file."""
    copy = tmp_path / "checkout"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".pytest_cache",
            ".darkroom-test",
            "__pycache__",
            ".ruff_cache",
            "*.egg-info",
        ),
    )

    def edit(rel: str, old: str, new: str) -> Path:
        path = copy / rel
        text = path.read_text()
        assert old in text, f"{rel} no longer contains {old!r}: update this test"
        path.write_text(text.replace(old, new))
        return copy

    return edit


# ---------------------------------------------------------------- the shared verdict helper


def test_spread_reports_median_range_quartiles_and_count() -> None:
    sp = Spread.of([0.9, 1.0, 1.1, 1.2, 5.0])
    assert (sp.median, sp.lo, sp.hi, sp.n) == (1.1, 0.9, 5.0, 5)
    assert sp.iqr == (1.0, 1.2)
    assert sp.text(1000, " ms", 0) == "1100 ms (min-max 900-5000, IQR 1000-1200, n=5)"
    assert Spread.of([2.0]).text(unit=" s") == "2.0 s (n=1)"


def test_a_ratio_whose_spread_holds_one_is_called_noise() -> None:
    # The case: a per-pair median of 0.765x from pairs that went both ways.
    noisy = ratios([5.0, 4.6, 6.2, 4.1], [6.1, 6.0, 5.9, 6.3])
    assert noisy.median < 0.9 and "no difference is shown" in against(noisy, 1.0)
    clear = ratios([4.0, 4.1, 4.2, 4.0], [6.1, 6.0, 5.9, 6.3])
    assert against(clear, 1.0) == ""


def test_a_missed_goal_is_printed_and_fails_only_under_strict(capsys) -> None:
    for strict, status in ((False, 0), (True, EXIT_MISSED)):
        report = Report("x", strict=strict)
        report.done("work checked")
        assert report.goal("fast enough", False) == "MISSED"
        assert report.finish() == status
        assert "bench x: goal MISSED: fast enough" in capsys.readouterr().out
    smoke = Report("x", smoke=True, strict=True)
    assert smoke.goal("fast enough", False).startswith("not judged")
    assert smoke.finish() == 0


def test_failed_work_ends_the_bench_with_its_reason(capsys) -> None:
    report = Report("x")
    report.require(True, "not shown")
    with pytest.raises(SystemExit) as exc:
        report.require(False, "the install ended 'failed'")
    assert exc.value.code == EXIT_FAILED
    assert capsys.readouterr().out.strip() == "bench x: FAILED: the install ended 'failed'"


# ---------------------------------------------------------------- tui


def test_tui_bench_smoke_installs_for_real() -> None:
    line = ok_line(run_bench("tui.py"), "tui")
    assert "install done" in line and "MB verified" in line and "first paints" in line


def test_tui_bench_fails_when_the_shared_tiny_repo_drifts(broken_checkout) -> None:
    # The drift that once went unnoticed: the repository lacks the requirements.txt its recipe names.
    root = broken_checkout(
        "tests/fixtures/tinygit.py",
        '(repo / "requirements.txt").write_text("packaging\\n")',
        "None",
    )
    line = failed_line(run_bench("tui.py", "--part", "install", root=root), "tui")
    assert "install ended" in line and "requirements.txt" in line


# ---------------------------------------------------------------- recipes, supervisor, weights


def test_recipes_bench_smoke_validates_every_recipe() -> None:
    assert "recipes validated" in ok_line(run_bench("recipes.py"), "recipes")


def test_recipes_bench_fails_when_a_recipe_is_rejected(broken_checkout) -> None:
    root = broken_checkout(
        "recipes/generator.yaml", "\nlicense:", "\nlicense: [not, a, licence]\nlicence_typo:"
    )
    assert "did not validate" in failed_line(run_bench("recipes.py", root=root), "recipes")


def test_supervisor_bench_smoke_starts_and_restarts() -> None:
    line = ok_line(run_bench("supervisor.py"), "supervisor")
    assert "starts healthy" in line and "1 crash(es) restarted" in line


def test_supervisor_bench_fails_when_the_tiny_app_cannot_start(broken_checkout) -> None:
    root = broken_checkout(
        "tests/fixtures/tinyapp/tinyapp/__main__.py",
        "sys.exit(main())",
        "sys.exit('broken on purpose')",
    )
    assert "did not answer its health check" in failed_line(
        run_bench("supervisor.py", root=root), "supervisor"
    )


def test_weights_bench_smoke_verifies_every_download() -> None:
    assert "every download verified" in ok_line(run_bench("weights.py"), "weights")


def test_weights_bench_fails_when_the_hub_serves_wrong_bytes(broken_checkout) -> None:
    root = broken_checkout(
        "tests/fixtures/hub.py",
        "self.wfile.write(body[sent : sent + n])",
        "self.wfile.write(bytes(n))",
    )
    assert "other bytes than the hub holds" in failed_line(
        run_bench("weights.py", root=root), "weights"
    )


# ---------------------------------------------------------------- envs and the app benches


def test_envs_bench_smoke_builds_envs_that_import() -> None:
    assert "envs built and importing packaging" in ok_line(run_bench("envs.py"), "envs")


def test_generator_bench_smoke_writes_images(generator_env, tiny_flux) -> None:
    # The tests' own env and tiny model, so the bench measures what the tests check.
    done = run_bench(
        "generator.py",
        "--env-home",
        str(generator_env.home.root),
        "--models",
        str(tiny_flux.root.parent),
    )
    assert "images written" in ok_line(done, "generator")


def test_restorer_bench_smoke_checks_the_app_against_raw(restorer_env, tiny_restore) -> None:
    models = Path(tiny_restore["esrgan-x4"]["path"]).parents[1]
    done = run_bench(
        "restorer.py", "--env-home", str(restorer_env.home.root), "--models", str(models)
    )
    assert "app output equals raw" in ok_line(done, "restorer")


def test_workflow_bench_smoke_completes_every_batch(generator_env) -> None:
    line = ok_line(run_bench("workflow.py", "--env-home", str(generator_env.home.root)), "workflow")
    assert "1 batches of 6 complete" in line and "resume after kill -9" in line
