"""Two apps with torch, from the package sources this machine's pip is configured with: the
CPU wheel is chosen, both envs import torch, and the second costs almost no extra disk
because both hardlink the same files from the shared uv cache."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from manager import envs
from manager.config import Settings
from manager.fsutil import dir_size
from manager.home import Home


def cpu_torch_pin(sources) -> str | None:
    """`torch==X` for a CPU-only torch wheel lying in a local find-links folder, if any.

    Pinning it keeps uv from choosing a CUDA build that would pull gigabytes of NVIDIA wheels.
    """
    for link in sources.find_links:
        folder = Path(link.removeprefix("file://"))
        if folder.is_dir():
            for wheel in sorted(folder.glob("torch-*+cpu-*.whl")):
                m = re.match(r"torch-([0-9.]+)\+cpu-", wheel.name)
                if m:
                    return f"torch=={m.group(1)}"
    return None


@pytest.fixture(scope="module")
def torch_setup(pip_sources, tmp_path_factory):
    pin = cpu_torch_pin(pip_sources)
    if pin is None:
        pytest.skip("no local CPU torch wheel in the configured find-links folders")
    settings = Settings(
        index_url=pip_sources.index_url,
        extra_index_urls=pip_sources.extra_index_urls,
        find_links=pip_sources.find_links,
    )
    home = Home(tmp_path_factory.mktemp("torchhome")).ensure()
    return home, settings, pin


def torch_spec(app: str, pin: str) -> envs.EnvSpec:
    return envs.EnvSpec(
        app=app,
        python="3.11",
        packages=[],
        torch_packages=[pin],
        torch_backend="cpu",
        check_import="torch",
    )


def test_second_torch_env_costs_little_disk(torch_setup) -> None:
    home, settings, pin = torch_setup
    first = envs.build(home, settings, torch_spec("torch-a", pin))
    assert first.packages["torch"].endswith("+cpu")
    out = subprocess.run(
        [
            str(envs.env_python(home, "torch-a")),
            "-c",
            "import torch; print(int(torch.ones(3).sum()), torch.cuda.is_available())",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.stdout.split() == ["3", "False"], out.stderr

    second = envs.build(home, settings, torch_spec("torch-b", pin))
    assert second.packages == first.packages
    one = dir_size(home.env_dir("torch-a"))
    both = dir_size(home.envs)  # each hardlinked inode counted once
    extra = both - one
    print(
        f"first torch env {one / 1e6:.0f} MB, second adds {extra / 1e6:.2f} MB ({extra / one:.2%})"
    )
    assert one > 100e6  # torch really is in there
    assert extra <= 0.05 * one
