"""The app's web page, built on its first visit.

Importing Gradio and building a page costs ~60-70 MB of RAM and seconds of start time,
which an app driven only through /api (the workflow runner, scripts, the supervisor's
health checks) never needs. `LazyPage` is mounted at / from the start; the first request
that reaches it (any path outside /api) imports Gradio in a worker thread, builds the page
as `gr.mount_gradio_app` would, starts Gradio's background tasks, and from then on hands
every request to it. `close()` stops those tasks at shutdown.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any


class LazyPage:
    """An ASGI app that becomes the Gradio page `build()` returns, the first time it is asked."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build  # -> gradio Blocks; called in a worker thread
        self._app: Any = None
        self._lock = asyncio.Lock()
        self._stack = AsyncExitStack()

    @property
    def built(self) -> bool:
        return self._app is not None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        app = self._app if self._app is not None else await self._start()
        await app(scope, receive, send)

    async def _start(self) -> Any:
        async with self._lock:
            if self._app is None:
                import anyio

                host, page = await anyio.to_thread.run_sync(self._mount)
                # what mount_gradio_app hooks into the host's lifespan: Gradio's queue and cleanup tasks
                await self._stack.enter_async_context(host.router.lifespan_context(host))
                self._app = page
        return self._app

    def _mount(self) -> tuple[Any, Any]:
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        import gradio as gr
        from fastapi import FastAPI
        from starlette.routing import Mount

        host = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        gr.mount_gradio_app(host, self._build(), path="/")
        page = next(r.app for r in host.routes if isinstance(r, Mount))
        return host, page

    async def close(self) -> None:
        """Stop Gradio's background tasks and delete its temporary files (server shutdown)."""
        await self._stack.aclose()
