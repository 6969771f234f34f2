"""The app protocol: the environment variables the manager hands every app it launches.

Apps read these (apps/appkit does it for bundled apps); the supervisor sets them.
Keeping the names in one place keeps both sides in step.
"""

from __future__ import annotations

HOST = "DARKROOM_HOST"            # address to bind, 127.0.0.1 unless the user opts in
PORT = "DARKROOM_PORT"            # port to listen on
APP = "DARKROOM_APP"              # the app id
DEVICE = "DARKROOM_DEVICE"        # "cuda", "cuda:1", "mps" or "cpu"
OUTPUTS = "DARKROOM_OUTPUTS"      # folder for results
HOME = "DARKROOM_HOME"            # the data folder
# JSON (apps/appkit/models.py, ModelsSpec): {"models": {model_id: {"variant", "precision", "offload",
#   "files": [{"repo", "revision", "path", "local"}], "snapshots": {repo: local snapshot dir}}}, "default": id}
MODELS = "DARKROOM_MODELS"
IDLE_UNLOAD = "DARKROOM_IDLE_UNLOAD_MINUTES"  # 0 = never
HF_CACHE = "HF_HUB_CACHE"         # the shared model store
HF_OFFLINE = "HF_HUB_OFFLINE"     # always "1": apps never download at run time

# Apps find one another (the workflow runner its steps' apps) read-only through the run files
# HOME/run/<app>.json: {"status": "ready", "url": ...}; no env var is needed.

HEALTH_READY = "ready"
HEALTH_LOADING = "loading"

# Switching and batches (manager/switching.py <-> apps/workflow/pause.py), files under HOME/run/:
#   holds/<app>.json   {"app", "for", "waiter_pid"} while a switch waits for <app> to make room;
#                      {"app", "for", "runner_pid"} once <for> runs. A hold is in force while
#                      that process lives; batches that call <app> pause between items meanwhile.
#   batches/<id>.json  {"pid", "preset", "apps", "keep_running", "state": "running"|"paused",
#                      "item", "done", "total"}: a batch at work, written by the workflow engine.
HOLDS_DIR = "holds"
BATCHES_DIR = "batches"
