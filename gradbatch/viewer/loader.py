"""Streaming reads off the GUI thread: a :class:`Loader` serves window requests on a worker
thread, newest first, so a GUI thread never waits on the disk (napari's async slicing). The
reads themselves are the store's (:class:`gradbatch.store.FieldReader`): a frozen
:class:`~gradbatch.store.WindowRequest` in, a :class:`~gradbatch.store.WindowResponse` out.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

from ..store import FieldReader, WindowRequest, WindowResponse

__all__ = ["Loader", "requested_fields"]


class Loader:
    """Serves window requests on a worker thread; only the newest pending request is read."""

    def __init__(
        self,
        reader: FieldReader,
        on_response: Callable[[WindowResponse], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.reader = reader
        self.on_response = on_response
        self.on_error = on_error
        self._queue: queue.Queue[WindowRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="gradbatch-loader", daemon=True)
        self._thread.start()

    def request(self, req: WindowRequest) -> None:
        self._queue.put(req)

    def _run(self) -> None:
        while True:
            req = self._queue.get()
            while req is not None:  # skip to the newest request
                try:
                    req = self._queue.get_nowait()
                    continue
                except queue.Empty:
                    break
            if req is None:
                return
            try:
                self.on_response(self.reader.read(req))
            except BaseException as exc:  # reported to the GUI, which shows it
                if self.on_error is not None:
                    self.on_error(exc)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)


def requested_fields(reader: FieldReader, wanted: Sequence[str]) -> tuple[str, ...]:
    return tuple(f for f in wanted if f in reader.fields)
