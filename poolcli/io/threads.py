"""Helper threads of the codecs: a reader inflating ahead (:class:`poolcli.io.deflate.Inflater`)
and writers working behind the bands (:class:`Behind`) hand items over bounded queues, and keep
Ctrl-C and SIGTERM for the main thread."""

from __future__ import annotations

from ..errors import ImageError


def quiet_thread() -> None:
    """Ctrl-C and SIGTERM are for the main thread to take: block them in this one (a helper
    thread calls this first)."""
    from .files import block_signals

    block_signals(main_only=False)


def offer(q, item, give_up) -> None:
    """Put ``item`` on the queue ``q``, waiting for room, unless ``give_up()`` becomes true."""
    import queue

    while not give_up():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


class Behind:
    """A writer whose file work runs on a thread behind the bands: :meth:`_hand` passes it
    each item in order (at most ``depth`` waiting), :meth:`_consume` does the work there, and
    an error there is raised here at the next hand-over."""

    def _start(self, name: str, depth: int) -> None:
        import queue
        import threading

        self.queue: queue.Queue = queue.Queue(depth)
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._guarded, name=name, daemon=True)
        self.thread.start()

    def _consume(self, items) -> None:
        raise NotImplementedError

    def _items(self):
        while (item := self.queue.get()) is not None:
            yield item

    def _guarded(self) -> None:
        quiet_thread()
        try:
            self._consume(self._items())
        except BaseException as exc:  # noqa: BLE001 - handed to the writing thread
            self.error.append(exc)

    def _hand(self, item) -> None:
        offer(self.queue, item, lambda: bool(self.error))
        if self.error:
            raise self.error[0]

    def _finish(self) -> None:
        """Everything handed over is written (or its error raised)."""
        self._hand(None)
        self.thread.join()
        if self.error:
            raise self.error[0]

    def abort(self) -> None:
        """Stop the thread (after an error elsewhere): the file is being thrown away."""
        import queue

        if self.thread.is_alive():
            self.error.append(ImageError("aborted"))
            try:
                while True:
                    self.queue.get_nowait()
            except queue.Empty:
                pass
            self.queue.put_nowait(None)
            self.thread.join(5)


