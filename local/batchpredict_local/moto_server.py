"""moto's server in a child process, made safe for concurrent clients.

Run as ``python -m batchpredict_local.moto_server --port 0``: prints ``READY <port>`` once it
listens, and exits when its standard input closes (the parent died or stopped it) or on SIGTERM.

Why a child process rather than ``ThreadedMotoServer`` in the caller's process: moto keeps its
state in module globals, so an in-process server shares it with every ``mock_aws`` in that
process (whose start and stop reset all backends), and with any other local stack there.

Why the middleware: moto's backends take no locks, so two concurrent requests can interleave in
ways AWS never allows (two conditional writes on one DynamoDB item both succeed; two receivers
get the same SQS message). The middleware runs one request at a time, which costs little since
moto is CPU-bound under the GIL anyway, and turns SQS long polls into short polls so that a
waiting receiver never holds the lock.

moto's DynamoDB also gets batchpredict_local.moto_speedups: transactions and queries whose cost
does not grow with the table (same answers, see that module).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from batchpredict_local import moto_speedups

# The short-poll cadence of an emulated long poll with nothing to wake it: it bounds how late a
# message whose visibility timeout or delay just ended is seen.
_IDLE_RECHECK_SECONDS = 0.2
_IDLE_CONNECTION_SECONDS = 120
_WAKE_TARGETS = frozenset(
    {
        "AmazonSQS.SendMessage",
        "AmazonSQS.SendMessageBatch",
        "AmazonSQS.ChangeMessageVisibility",
        "AmazonSQS.ChangeMessageVisibilityBatch",
    }
)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def whole_answer(
    app: Callable[[Environ, StartResponse], Iterable[bytes]], environ: Environ
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Call a WSGI app and gather its whole answer: status, headers and body."""
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, headers
        return lambda data: None

    result = app(environ, start_response)
    try:
        payload = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return answer["status"], answer["headers"], payload


class SerializingMiddleware:
    """One moto request at a time per service; SQS long polls emulated without a lock held.

    DynamoDB and SQS have a lock each (moto keeps their state apart); every other service
    takes the SQS lock as well, since SNS or EventBridge can deliver into a queue.
    """

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self._app = app
        self._dynamodb = threading.Lock()
        self._sqs = threading.Lock()
        self._other = threading.Lock()
        self._arrivals = threading.Condition()
        self._generation = 0

    def _locks(self, target: str) -> tuple[threading.Lock, ...]:
        if target.startswith("DynamoDB_"):
            return (self._dynamodb,)
        if target.startswith("AmazonSQS."):
            return (self._sqs,)
        return (self._sqs, self._other)  # always in this order: no lock cycle

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        body = _read_body(environ)
        if target == "AmazonSQS.ReceiveMessage":
            status, headers, payload = self._receive(environ, body)
        else:
            status, headers, payload = self._call(environ, body)
            if target in _WAKE_TARGETS:
                self._wake()
        start_response(status, headers)
        return [payload]

    def _call(self, environ: Environ, body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        with contextlib.ExitStack() as held:
            for lock in self._locks(environ.get("HTTP_X_AMZ_TARGET", "")):
                held.enter_context(lock)
            status, headers, payload = whole_answer(self._app, env)
        if environ.get("REQUEST_METHOD") != "HEAD":  # a HEAD's length is the object's
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(payload))))
        return status, headers, payload

    def _wake(self) -> None:
        with self._arrivals:
            self._generation += 1
            self._arrivals.notify_all()

    def _receive(self, environ: Environ, body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        try:
            request = json.loads(body or b"{}")
            wait = float(request.get("WaitTimeSeconds") or 0)
        except (ValueError, TypeError, AttributeError):
            return self._call(environ, body)
        if not 0 < wait <= 20:
            return self._call(environ, body)
        request["WaitTimeSeconds"] = 0
        short_poll = json.dumps(request).encode()
        deadline = time.monotonic() + wait
        first = True
        while True:
            with self._arrivals:
                generation = self._generation
            remaining = deadline - time.monotonic()
            # A recheck asks moto only if its queue may have something to give: a short poll
            # is a whole request through moto, and a dozen idle pollers make many of them.
            if first or remaining <= 0 or not _certainly_empty(environ, request):
                first = False
                status, headers, payload = self._call(environ, short_poll)
                remaining = deadline - time.monotonic()
                if not status.startswith("200") or remaining <= 0 or _has_messages(payload):
                    return status, headers, payload
            with self._arrivals:
                self._arrivals.wait_for(
                    lambda g=generation: self._generation != g,  # type: ignore[misc]
                    timeout=min(_IDLE_RECHECK_SECONDS, remaining),
                )


def _read_body(environ: Environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if length > 0:
        return stream.read(length)
    # Without a length, read to the end only if the server has framed the body (chunked):
    # otherwise read() waits for the client to close its keep-alive connection (an empty
    # S3 PUT such as CreateBucket sends no Content-Length).
    return stream.read() if environ.get("wsgi.input_terminated") else b""


def _certainly_empty(environ: Environ, request: dict[str, Any]) -> bool:
    """True only if moto's queue holds no message that a receive could return now.

    A look at moto's state without a request (and without the lock: a message that arrives
    meanwhile wakes the waiter anyway). Anything unexpected answers False, so the caller asks
    moto.
    """
    try:
        from moto.sqs.models import sqs_backends

        account, name = str(request["QueueUrl"]).rstrip("/").split("/")[-2:]
        scope = environ["HTTP_AUTHORIZATION"].split("Credential=", 1)[1].split(",", 1)[0]
        region = scope.split("/")[2]
        queue = sqs_backends[account][region].queues[name]
        return not any(m.visible and not m.delayed for m in list(queue._messages))
    except Exception:
        return False


def _has_messages(payload: bytes) -> bool:
    try:
        return bool(json.loads(payload or b"{}").get("Messages"))
    except (ValueError, AttributeError):
        return True  # not JSON: let the caller see it


def _reset_receive_count_on_dead_letter() -> None:
    """A message moved to a dead-letter queue starts there with a receive count of zero.

    moto moves the message object as it is, so its ApproximateReceiveCount (already at the
    source's maxReceiveCount) would make a dead-letter queue that has its own RedrivePolicy move
    it on again at its first receive, before any consumer of that queue saw it. SQS gives the
    consumer of a dead-letter queue its own maxReceiveCount attempts (docs/LOCAL.md).
    """
    from moto.sqs import models

    original = models.Queue.add_message

    def add_message(self: Any, message: Any) -> None:
        if getattr(message, "approximate_receive_count", 0):
            message.approximate_receive_count = 0
            message.approximate_first_receive_timestamp = None
        original(self, message)

    models.Queue.add_message = add_message  # type: ignore[method-assign]


def _watch_parent(stop: Callable[[], None]) -> None:
    """The parent holds our stdin open; EOF means it stopped us or died."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        stop()

    threading.Thread(target=watch, name="moto-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batchpredict_local.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    os.environ.setdefault("MOTO_ACCOUNT_ID", "000000000000")
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    _reset_receive_count_on_dead_letter()
    moto_speedups.apply()

    class KeepAliveHandler(MotoRequestHandler):
        """moto's request handler, but the connection stays open for the client's next request.

        Werkzeug answers every request with `Connection: close` and then drains the socket (it
        cannot know that the app read the whole body), so each AWS call of the local stack paid
        a TCP connect, a new server thread and a close. SerializingMiddleware reads every request
        body whole and answers with one framed payload, so this handler calls it and writes
        the answer with its length, and http.server reads the next request from the same
        connection. The environ is still moto's own (`make_environ`).
        """

        timeout = _IDLE_CONNECTION_SECONDS  # an idle connection's thread ends after this
        wbufsize = -1  # head and body leave in one write on flush, not two small segments

        def setup(self) -> None:
            super().setup()
            # An answer's last segment must not wait for the client's delayed ACK (Nagle).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").strip().lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
            try:
                status, headers, payload = whole_answer(self.server.app, self.make_environ())
            except Exception:
                traceback.print_exc()
                payload = b"internal error in the local moto server"
                status, headers = (
                    "500 Internal Server Error",
                    [("Content-Length", str(len(payload)))],
                )
            code, _, reason = status.partition(" ")
            self.send_response(int(code), reason)
            # Every answer of SerializingMiddleware carries its Content-Length (a HEAD's is the
            # object's), so the connection can serve the next request.
            for name, value in headers:
                if name.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

        def log_error(self, format: str, *args: Any) -> None:
            if not format.startswith("Request timed out"):  # an idle connection, let go
                super().log_error(format, *args)

    app = SerializingMiddleware(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=KeepAliveHandler)
    server.daemon_threads = True  # type: ignore[attr-defined]
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` dumps every thread's stack
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _watch_parent(stop)
    print(f"READY {server.server_address[1]}", flush=True)
    # The parent reads nothing more from our stdout: anything printed later goes to stderr,
    # rather than filling the pipe and blocking the server.
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
