"""Asking the hub what exactly to fetch: commits, concrete paths for globs, sizes and hashes.

It goes through huggingface_hub's HfApi (repo info, tree listing, paths-info) against the
configured endpoint, and turns every hub failure into a DarkroomError a person can act on.
The token is sent, never printed: no message here contains it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from ..errors import DarkroomError, Gated, NotFound, Offline
from ..recipe import ModelFile
from .store import SHA256_RE, RepoStore, match_pattern

DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class RemoteFile:
    """One concrete file at one commit, as the hub describes it."""

    spec: ModelFile
    path: str
    commit: str
    etag: str  # the blob name: sha256 for LFS files, git sha1 for small ones
    size: int
    sha256: str | None  # what the bytes must hash to: the recipe's pin, else the hub's LFS sha256
    url: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.spec.repo_type, self.spec.repo, self.path)


def endpoint_of(hf_endpoint: str | None) -> str:
    return (hf_endpoint or DEFAULT_ENDPOINT).rstrip("/")


def resolve_url(endpoint: str, repo: str, repo_type: str, commit: str, path: str) -> str:
    prefix = "datasets/" if repo_type == "dataset" else ""
    return f"{endpoint}/{prefix}{repo}/resolve/{commit}/{quote(path)}"


# ---------------------------------------------------------------- errors


def licence_hint(repo: str, endpoint: str = DEFAULT_ENDPOINT) -> str:
    """Where to accept a licence and get a token: the hub Darkroom downloads from (a mirror when
    hf_endpoint is set), not always huggingface.co."""
    endpoint = endpoint.rstrip("/")
    return (
        f"Accept the licence on {endpoint}/{repo} while logged in, then run "
        "`darkroom config set hf_token <token>` with a read token from "
        f"{endpoint}/settings/tokens (or set it in Settings)."
    )


def http_error(
    status: int,
    code: str | None,
    message: str | None,
    repo: str,
    path: str,
    revision: str,
    had_token: bool,
    endpoint: str,
) -> DarkroomError:
    """The sentence for a hub HTTP error, from its status and X-Error-* headers."""
    message = message or ""
    if "Invalid credentials" in message or "Invalid user token" in message:
        return Gated(
            "The Hugging Face token in your settings was refused by the hub (it is invalid or expired).",
            licence_hint(repo, endpoint),
        )
    if code == "GatedRepo" or (status in (401, 403) and "gated" in message.lower()):
        why = (
            "your token has not been granted access to it yet"
            if had_token
            else "no Hugging Face token is set"
        )
        return Gated(f"{repo} is a gated model and {why}.", licence_hint(repo, endpoint))
    if code == "RevisionNotFound":
        return NotFound(
            f"{repo} has no revision '{revision}' on {endpoint}.",
            "The recipe may be out of date; update Darkroom or the recipe.",
        )
    if code == "EntryNotFound":
        return NotFound(
            f"{repo} has no file '{path}' at revision '{revision}'.",
            "The recipe may be out of date; update Darkroom or the recipe.",
        )
    if code == "RepoNotFound" or status in (401, 404):
        hint = "Check the repository name in the recipe."
        if not had_token:
            hint += (
                " If it is private or gated, "
                + licence_hint(repo, endpoint)[0].lower()
                + licence_hint(repo, endpoint)[1:]
            )
        return NotFound(f"The repository {repo} was not found on {endpoint}.", hint)
    if status == 429:
        return DarkroomError(
            f"The hub at {endpoint} is limiting requests (HTTP 429).",
            "Wait a few minutes and run the same command again; finished files are kept.",
        )
    return DarkroomError(
        f"The hub at {endpoint} answered with an error (HTTP {status}) for {repo}/{path}.",
        "Try again later; finished and partial files are kept and resume.",
    )


def network_error(endpoint: str) -> DarkroomError:
    return Offline(
        f"Could not reach the Hugging Face hub at {endpoint}.",
        "Check your internet connection (or the hf_endpoint mirror setting), then run the same "
        "command again; finished files are kept and partial ones resume.",
    )


def offline_missing(missing: list[str]) -> DarkroomError:
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return Offline(
        f"Offline mode is on and these model files are not in the store: {shown}.",
        "Turn offline mode off (`darkroom config set offline false`) to download them, or bring them "
        "in with `darkroom models import`.",
    )


def _map_hf_exception(
    exc: Exception, spec: ModelFile, had_token: bool, endpoint: str
) -> DarkroomError:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return Offline(
            "HF_HUB_OFFLINE is set in the environment, so the hub cannot be asked.",
            "Unset HF_HUB_OFFLINE, or use Darkroom's offline setting with files already in the store.",
        )
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        r = exc.response
        return http_error(
            r.status_code,
            r.headers.get("X-Error-Code"),
            r.headers.get("X-Error-Message"),
            spec.repo,
            spec.path,
            spec.revision,
            had_token,
            endpoint,
        )
    if isinstance(exc, (httpx2.TransportError, OSError)):
        return network_error(endpoint)
    return DarkroomError(
        f"The hub at {endpoint} gave an answer Darkroom could not read for {spec.repo}.",
        "Check the hf_endpoint setting points to a Hugging Face hub or mirror.",
    )


# ---------------------------------------------------------------- resolving


def resolve_remote(
    specs: Iterable[ModelFile], endpoint: str, token: str | None
) -> list[RemoteFile]:
    """Concrete files for the specs: one repo_info per (repo, revision), then a tree listing
    (for globs) or paths-info (for named files) at that commit. Raises DarkroomError."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint, token=token or False, library_name="darkroom")
    groups: dict[tuple[str, str, str], list[ModelFile]] = {}
    for spec in specs:
        groups.setdefault((spec.repo_type, spec.repo, spec.revision), []).append(spec)
    out: list[RemoteFile] = []
    for (repo_type, repo, revision), group in groups.items():
        try:
            info = api.repo_info(repo, repo_type=repo_type, revision=revision)
            commit = info.sha
            if not commit:
                raise DarkroomError(
                    f"The hub at {endpoint} did not say which commit {repo}@{revision} is.",
                    "Check the hf_endpoint setting points to a Hugging Face hub or mirror.",
                )
            if getattr(info, "gated", False) and not token:
                raise http_error(
                    401, "GatedRepo", "gated", repo, group[0].path, revision, False, endpoint
                )
            if any(s.is_pattern for s in group):
                entries = [
                    e
                    for e in api.list_repo_tree(
                        repo, recursive=True, revision=commit, repo_type=repo_type
                    )
                    if isinstance(e, RepoFile)
                ]
            else:
                entries = [
                    e
                    for e in api.get_paths_info(
                        repo, [s.path for s in group], revision=commit, repo_type=repo_type
                    )
                    if isinstance(e, RepoFile)
                ]
        except DarkroomError:
            raise
        except Exception as exc:  # every hub failure becomes a sentence
            raise _map_hf_exception(exc, group[0], bool(token), endpoint) from None
        by_path = {e.path: e for e in entries}
        for spec in group:
            paths = (
                match_pattern(spec.path, sorted(by_path))
                if spec.is_pattern
                else ([spec.path] if spec.path in by_path else [])
            )
            if not paths:
                raise DarkroomError(
                    f"{repo} has no file matching '{spec.path}' at revision '{revision}'.",
                    "The recipe may be out of date; update Darkroom or the recipe.",
                )
            for path in paths:
                out.append(_remote_file(spec, by_path[path], commit, endpoint))
    return _dedupe(out)


def _remote_file(spec: ModelFile, entry, commit: str, endpoint: str) -> RemoteFile:
    lfs_sha = entry.lfs.sha256 if entry.lfs is not None else None
    pin = spec.sha256 if not spec.is_pattern else None
    if pin and lfs_sha and pin != lfs_sha:
        raise DarkroomError(
            f"{spec.repo}/{entry.path} on the hub is not the file the recipe expects "
            f"(sha256 {lfs_sha[:12]}… instead of {pin[:12]}…).",
            "Nothing was downloaded. The recipe or the hub changed; update Darkroom or pin the "
            "recipe to the revision it was written for.",
        )
    return RemoteFile(
        spec=spec,
        path=entry.path,
        commit=commit,
        etag=lfs_sha or entry.blob_id,
        size=int(entry.lfs.size if entry.lfs is not None else entry.size),
        sha256=pin or lfs_sha,
        url=resolve_url(endpoint, spec.repo, spec.repo_type, commit, entry.path),
    )


def _dedupe(files: list[RemoteFile]) -> list[RemoteFile]:
    seen: dict[tuple[str, str, str, str], RemoteFile] = {}
    for f in files:
        seen.setdefault((*f.key, f.commit), f)
    return list(seen.values())


def resolve_local(specs: Iterable[ModelFile], models) -> tuple[list[RemoteFile], list[str]]:
    """What the store alone can say: files present for each spec, and the specs it cannot satisfy."""
    from .store import blob_of

    found: list[RemoteFile] = []
    missing: list[str] = []
    for spec in specs:
        store = RepoStore(models, spec.repo, spec.repo_type)
        commit = store.ref(spec.revision)
        paths: list[str] = []
        if commit:
            present = store.snapshot_files(commit)
            paths = (
                match_pattern(spec.path, present)
                if spec.is_pattern
                else ([spec.path] if spec.path in present else [])
            )
        if not paths:
            missing.append(f"{spec.repo}/{spec.path}")
            continue
        for path in paths:
            pointer = store.pointer(commit, path)
            blob = blob_of(pointer)
            etag = blob.name
            found.append(
                RemoteFile(
                    spec=spec,
                    path=path,
                    commit=commit,
                    etag=etag,
                    size=pointer.stat().st_size,
                    sha256=(spec.sha256 if not spec.is_pattern else None)
                    or (etag if SHA256_RE.match(etag) else None),
                    url="",
                )
            )
    return _dedupe(found), missing


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
