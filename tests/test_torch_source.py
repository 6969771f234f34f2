"""The right torch for the machine, with or without a mirror: a machine without a GPU never
resolves PyPI's CUDA torch (and its gigabytes of nvidia-* wheels) because a mirror is set."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from manager import config
from manager.config import Settings
from manager.errors import DarkroomError
from manager.hardware import load_profile
from manager.home import Home
from manager.planner import plan
from manager.recipe import bundled_recipes
from manager.uvtool import source_args, torch_requirements, torch_source, uv_bin

GENERATOR = bundled_recipes()["generator"]
MIRROR = "https://mirror.example/simple"


def test_cpu_plan_with_a_mirror_still_asks_for_cpu_torch() -> None:
    p = plan(GENERATOR, load_profile("cpu-only-16gb"))
    assert p.torch_backend == "cpu"
    args = source_args(Settings(index_url=MIRROR), p.torch_backend)
    assert args[args.index("--torch-backend") + 1] == "cpu" and MIRROR in args


def test_a_mirror_can_name_its_torch_index_per_build() -> None:
    settings = Settings(
        index_url=MIRROR,
        extra_index_urls=["https://other.example/simple"],
        torch_index_urls={"cpu": "https://mirror.example/whl/cpu"},
    )
    args = source_args(settings, "cpu")
    assert "--torch-backend" not in args
    # uv takes each package from the first index that has it: the torch index goes first
    assert args.index("https://mirror.example/whl/cpu") < args.index("https://other.example/simple")
    assert torch_source(settings, "cu124") == "user"  # no CUDA index named: the mirror as it is


def test_a_wheelhouse_with_a_cpu_torch_is_pinned_to_it(tmp_path: Path) -> None:
    for name in (
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.12.1+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torchvision-0.28.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    settings = Settings(extra_index_urls=[MIRROR], find_links=[str(tmp_path)])
    assert torch_source(settings, "cpu") == "wheels"
    assert "--torch-backend" not in source_args(settings, "cpu")
    assert torch_requirements(settings, "cpu", ["torch", "torchvision", "torch==2.12.1"]) == [
        "torch==2.13.0+cpu",
        "torchvision==0.28.0+cpu",
        "torch==2.12.1",
    ]
    # no user sources at all: PyTorch's index for the build, as before
    assert source_args(Settings(), "cu124")[-2:] == ["--torch-backend", "cu124"]
    assert "--torch-backend" not in source_args(Settings(), "mps")


def test_torch_index_urls_from_the_command_line(tmp_path: Path) -> None:
    home = Home(tmp_path).ensure()
    saved = config.set_value(
        home, "torch_index_urls", "cpu=https://m/whl/cpu cu124=https://m/whl/cu124"
    )
    assert saved.torch_index_urls == {"cpu": "https://m/whl/cpu", "cu124": "https://m/whl/cu124"}
    with pytest.raises(DarkroomError, match="unknown torch build"):
        config.set_value(home, "torch_index_urls", "cuda=https://m/whl")


def test_fresh_generator_resolution_on_a_cpu_machine_has_no_nvidia(
    pip_sources, tmp_path: Path
) -> None:
    """This machine's own mirror + wheelhouse (as a user would set them): resolving the
    generator's packages the way envs.build does holds no nvidia-* package; the same sources
    without the torch choice resolve PyPI's CUDA torch, which is what the fix is for."""
    settings = Settings(
        index_url=pip_sources.index_url,
        extra_index_urls=pip_sources.extra_index_urls,
        find_links=pip_sources.find_links,
    )
    if torch_source(settings, "cpu") != "wheels":
        pytest.skip(
            "no CPU torch wheel in this machine's find-links folders (the resolution would need PyTorch's index)"
        )
    p = plan(GENERATOR, load_profile("cpu-only-16gb"))
    reqs = [*p.packages, *torch_requirements(settings, p.torch_backend, p.torch_packages)]

    def resolve(args: list[str], requirements: list[str]) -> str:
        req = tmp_path / "req.txt"
        req.write_text("\n".join(requirements) + "\n")
        out = subprocess.run(
            [
                str(uv_bin()),
                "pip",
                "compile",
                "--python-version",
                p.python,
                "--no-header",
                "--cache-dir",
                str(tmp_path / "cache"),
                *args,
                str(req),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    fixed = resolve(source_args(settings, p.torch_backend), reqs)
    assert "torch==" in fixed and "+cpu" in fixed
    assert "nvidia-" not in fixed and "triton" not in fixed
    before = resolve(source_args(settings, None), [*p.packages, *p.torch_packages])
    if "nvidia-" not in before:
        pytest.skip("this machine's mirror has no CUDA torch newer than the wheelhouse's CPU one")


def test_the_generator_env_built_on_this_cpu_machine_holds_no_nvidia(generator_env) -> None:
    """The shared generator env is built from the recipe's bare `torch` by envs.build on a
    machine without a GPU: it holds the CPU build and no nvidia-* or triton package."""
    assert generator_env.packages["torch"].endswith("+cpu")
    assert not [p for p in generator_env.packages if p.startswith("nvidia") or p == "triton"]


def test_doctor_names_a_torch_that_is_not_the_planned_build(generator_env) -> None:
    from manager.doctor import torch_mismatch

    assert torch_mismatch("cpu", generator_env.packages) is None  # the real CPU env is right
    cuda_env = {
        "torch": "2.13.0",
        "nvidia-cublas": "13.1.1.3",
        "nvidia-cudnn-cu13": "9.1",
        "pillow": "11",
    }
    level, text = torch_mismatch("cpu", cuda_env)
    assert level == "warning" and "CUDA build" in text and "2 nvidia-*" in text
    level, text = torch_mismatch("cu124", {"torch": "2.13.0+cpu"})
    assert level == "error" and "never uses the GPU" in text
    assert torch_mismatch("cu124", {"torch": "2.13.0+cu124"}) is None
    assert torch_mismatch("mps", {"torch": "2.13.0"}) is None
