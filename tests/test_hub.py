"""The local test hub answers the real huggingface_hub client the way the Hub does."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.fixtures.hub import LocalHub, git_blob_sha1

BIG = os.urandom(3 * 1024 * 1024 + 17)


def _blob_name(path: str) -> str:
    return os.path.basename(os.path.realpath(path))


def test_download_small_and_lfs_file_with_real_client(hub: LocalHub, tmp_path: Path) -> None:
    commit = hub.add_files("acme/tiny", {"config.json": b'{"a": 1}', "model.safetensors": BIG})
    cache = tmp_path / "cache"
    small = hf_hub_download("acme/tiny", "config.json", cache_dir=cache)
    big = hf_hub_download("acme/tiny", "model.safetensors", cache_dir=cache)
    assert Path(small).read_bytes() == b'{"a": 1}'
    assert Path(big).read_bytes() == BIG
    # blobs are named like the Hub's: git sha1 for small files, sha256 for LFS files
    assert _blob_name(small) == git_blob_sha1(b'{"a": 1}')
    assert _blob_name(big) == hashlib.sha256(BIG).hexdigest()
    assert f"snapshots/{commit}/" in small
    assert (cache / "models--acme--tiny" / "refs" / "main").read_text() == commit


def test_repo_info_listing_and_paths_info(hub: LocalHub) -> None:
    hub.add_files(
        "acme/pipe",
        {
            "model_index.json": b"{}",
            "vae/config.json": b"{}",
            "vae/diffusion_pytorch_model.safetensors": BIG,
        },
    )
    api = HfApi(endpoint=hub.url)
    info = api.model_info("acme/pipe")
    assert info.sha == hub.commit("acme/pipe")
    assert sorted(s.rfilename for s in info.siblings) == [
        "model_index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    assert sorted(api.list_repo_files("acme/pipe")) == sorted(s.rfilename for s in info.siblings)
    top = {e.path for e in api.list_repo_tree("acme/pipe")}
    assert top == {"model_index.json", "vae"}
    entries = api.get_paths_info("acme/pipe", ["vae/diffusion_pytorch_model.safetensors", "vae"])
    file_entry = next(e for e in entries if e.path.endswith(".safetensors"))
    assert file_entry.lfs is not None and file_entry.lfs.sha256 == hashlib.sha256(BIG).hexdigest()
    assert file_entry.size == len(BIG)


def test_snapshot_download_with_patterns_and_revisions(hub: LocalHub, tmp_path: Path) -> None:
    first = hub.add_files("acme/pipe", {"a.json": b"1", "w/x.safetensors": BIG})
    second = hub.add_file("acme/pipe", "a.json", b"2")
    assert first != second
    folder = snapshot_download("acme/pipe", cache_dir=tmp_path, allow_patterns=["*.json"])
    assert sorted(p.name for p in Path(folder).rglob("*") if p.is_file()) == ["a.json"]
    assert (Path(folder) / "a.json").read_bytes() == b"2"
    old = hf_hub_download("acme/pipe", "a.json", revision=first, cache_dir=tmp_path)
    assert Path(old).read_bytes() == b"1"


def test_datasets_are_served_under_their_prefix(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_file("acme/photos", "data/one.parquet", b"rows", repo_type="dataset")
    path = hf_hub_download(
        "acme/photos", "data/one.parquet", repo_type="dataset", cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == b"rows"
    assert "datasets--acme--photos" in path
    assert HfApi(endpoint=hub.url).dataset_info("acme/photos").sha == hub.commit(
        "acme/photos", repo_type="dataset"
    )


def test_errors_carry_the_hub_error_codes(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_file("acme/tiny", "a.json", b"{}")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/missing", "a.json", cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("acme/tiny", "a.json", revision="v9", cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("acme/tiny", "nope.json", cache_dir=tmp_path)


def test_gated_repo_needs_the_right_token(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_file("acme/gated", "w.safetensors", BIG)
    hub.gate("acme/gated", token="hf_good")
    hub.add_token("hf_other")
    with pytest.raises(GatedRepoError) as no_token:
        hf_hub_download("acme/gated", "w.safetensors", cache_dir=tmp_path, token=False)
    assert no_token.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as not_granted:
        hf_hub_download("acme/gated", "w.safetensors", cache_dir=tmp_path, token="hf_other")
    assert not_granted.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as bad:
        hf_hub_download("acme/gated", "w.safetensors", cache_dir=tmp_path, token="hf_typo")
    assert (
        bad.value.response.headers["X-Error-Message"]
        == "Invalid credentials in Authorization header"
    )
    path = hf_hub_download("acme/gated", "w.safetensors", cache_dir=tmp_path, token="hf_good")
    assert Path(path).read_bytes() == BIG


def test_range_requests_answer_206(hub: LocalHub) -> None:
    hub.add_file("acme/tiny", "w.bin", BIG, lfs=False)
    url = f"{hub.url}/acme/tiny/resolve/main/w.bin"
    with httpx.Client() as client:
        part = client.get(url, headers={"Range": "bytes=10-19"})
        tail = client.get(url, headers={"Range": "bytes=-5"})
        past = client.get(url, headers={"Range": f"bytes={len(BIG)}-"})
    assert part.status_code == 206 and part.content == BIG[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(BIG)}"
    assert tail.content == BIG[-5:]
    assert past.status_code == 416


def test_dropped_connection_is_resumed_by_the_client(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_file("acme/tiny", "w.safetensors", BIG)
    hub.faults.drop_after("w.safetensors", 1_000_000)
    path = hf_hub_download("acme/tiny", "w.safetensors", cache_dir=tmp_path)
    assert Path(path).read_bytes() == BIG
    stats = hub.stats("w.safetensors")
    assert stats.requests == 2
    # huggingface_hub resumes from the last whole 10 MB chunk it wrote; here that is byte 0
    assert stats.ranges[1] in ("", "bytes=0-")
    assert stats.bytes_served == len(BIG) + 1_000_000


def test_corrupt_fault_serves_wrong_bytes_once(hub: LocalHub) -> None:
    hub.add_file("acme/tiny", "w.bin", BIG, lfs=False)
    hub.faults.corrupt("w.bin")
    url = f"{hub.url}/acme/tiny/resolve/main/w.bin"
    with httpx.Client() as client:
        bad = client.get(url).content
        good = client.get(url).content
    assert len(bad) == len(BIG) and bad != BIG
    assert good == BIG


def test_add_folder_and_concurrent_clients(hub: LocalHub, tmp_path: Path) -> None:
    src = tmp_path / "saved"
    for i in range(12):
        (src / f"part{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"part{i % 3}" / f"f{i}.safetensors").write_bytes(os.urandom(200_000))
    hub.add_folder("acme/folder", src)
    folder = snapshot_download("acme/folder", cache_dir=tmp_path / "cache", max_workers=8)
    for original in src.rglob("*.safetensors"):
        assert (Path(folder) / original.relative_to(src)).read_bytes() == original.read_bytes()
