"""A test app served for real: uvicorn on a free port of its own, in a thread, stoppable and
restartable on the same port."""

from __future__ import annotations

import threading
import time

import uvicorn
from bench.server import free_port
from fastapi import FastAPI


class ThreadedApp:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive(), f"server on port {self.port} did not start"
            assert time.monotonic() < deadline, f"server on port {self.port} did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        """Down for real: connections are refused until `start()`."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None
