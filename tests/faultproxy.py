"""A loopback HTTP reverse proxy with faults that tests switch on at run time.

It sits in front of the SeaweedFS S3 port and forwards requests verbatim
(Host header included, so a SigV4 signature stays valid), and can:

- answer the next N matching requests with a 5xx and an S3-style XML error,
- delay matching requests, before forwarding (a client that gives up during
  the delay leaves nothing behind: the request is then not forwarded) or after
  (the write lands but the answer comes late: the ambiguous outcome a
  conditional-write client must handle),
- drop the connection without an answer,
- strip If-None-Match / If-Match, as an endpoint that ignores conditional
  writes would,
- count requests by method and keep a log of what it saw.

Stdlib only: ThreadingHTTPServer in, http.client out.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import logging
import select
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

log = logging.getLogger(__name__)

# RFC 9110 hop-by-hop headers: they describe one connection, not the message.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
PRECONDITION_HEADERS = frozenset({"if-none-match", "if-match"})
_S3_CODES = {500: "InternalError", 503: "SlowDown"}
_CHUNK = 64 * 1024

FaultKind = Literal["status", "delay", "drop"]
When = Literal["before", "after"]


@dataclass
class _Fault:
    kind: FaultKind
    remaining: int | None  # None: every matching request until cleared
    method: str | None
    path_contains: str | None
    status: int = 503
    seconds: float = 0.0
    when: When = "before"

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    fault: FaultKind | None
    status: int | None = None


@dataclass
class _State:
    faults: list[_Fault] = field(default_factory=list)
    strip_preconditions: bool = False
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    seen: list[SeenRequest] = field(default_factory=list)


class FaultProxy:
    """Reverse proxy on 127.0.0.1:<free port> in front of upstream_port."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._state = _State()
        # Set on stop()/reset() so a sleeping delay ends at once.
        self._wake = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits at most one poll
            name="faultproxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._wake.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- programming faults ------------------------------------------------

    def fail_next(
        self,
        n: int | None = 1,
        *,
        status: int = 503,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next n matching requests (None: all) with `status`."""
        self._add(_Fault("status", n, method, path_contains, status=status))

    def delay(
        self,
        seconds: float,
        n: int | None = None,
        *,
        when: When = "before",
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Hold matching requests `seconds` before forwarding or after the answer."""
        self._add(_Fault("delay", n, method, path_contains, seconds=seconds, when=when))

    def drop_next(
        self,
        n: int | None = 1,
        *,
        when: When = "before",
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Close the connection with no answer, before or after forwarding."""
        self._add(_Fault("drop", n, method, path_contains, when=when))

    def strip_preconditions(self, on: bool = True) -> None:
        """Remove If-None-Match / If-Match from every forwarded request."""
        with self._lock:
            self._state.strip_preconditions = on

    def clear_faults(self) -> None:
        with self._lock:
            self._state.faults.clear()
            self._state.strip_preconditions = False

    def reset(self) -> None:
        """Clear faults, counts and the request log."""
        self._wake.set()
        with self._lock:
            self._state = _State()
        self._wake.clear()

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._state.faults.append(fault)

    # -- observing ---------------------------------------------------------

    @property
    def counts(self) -> collections.Counter[str]:
        """Requests received per method (faulted ones included)."""
        with self._lock:
            return collections.Counter(self._state.counts)

    @property
    def seen(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._state.seen)

    # -- used by the handler -----------------------------------------------

    def _take(self, method: str, path: str) -> tuple[list[_Fault], bool]:
        """Faults firing for this request (consuming one use each), strip flag."""
        with self._lock:
            self._state.counts[method] += 1
            firing = []
            for f in self._state.faults:
                if f.matches(method, path):
                    if f.remaining is not None:
                        f.remaining -= 1
                    firing.append(f)
            return firing, self._state.strip_preconditions

    def _record(self, req: SeenRequest) -> None:
        with self._lock:
            self._state.seen.append(req)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        addr: tuple[str, int],
        handler: type[http.server.BaseHTTPRequestHandler],
        proxy: FaultProxy,
    ) -> None:
        self.proxy = proxy
        super().__init__(addr, handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 so clients keep connections alive, as they would against S3.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body
    # waits for the client's delayed ACK and every answer gains ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        log.debug("faultproxy: " + format, *args)

    def do_GET(self) -> None:
        self._proxy()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _proxy(self) -> None:
        proxy = self.server.proxy
        method, path = self.command, self.path
        body = self._read_body()
        faults, strip = proxy._take(method, path)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in _HOP_BY_HOP and not (strip and k.lower() in PRECONDITION_HEADERS)
        }
        first = faults[0].kind if faults else None
        for f in faults:
            if f.kind == "delay" and f.when == "before":
                proxy._sleep(f.seconds)
                if self._client_gone():
                    proxy._record(SeenRequest(method, path, headers, "delay"))
                    self.close_connection = True
                    return
        for f in faults:
            if f.kind == "drop" and f.when == "before":
                proxy._record(SeenRequest(method, path, headers, "drop"))
                self.close_connection = True
                return
            if f.kind == "status":
                proxy._record(SeenRequest(method, path, headers, "status", f.status))
                self._send_error(f.status)
                return
        self._forward(method, path, headers, body, faults, first)

    def _client_gone(self) -> bool:
        # Readable with nothing to read means the client closed its end.
        sock = self.connection
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        try:
            return bool(sock.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    def _forward(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        faults: list[_Fault],
        first: FaultKind | None,
    ) -> None:
        proxy = self.server.proxy
        conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                # The body is re-framed here (a chunked upload arrives whole),
                # and 100-continue was already settled with the client.
                if k.lower() not in ("content-length", "expect"):
                    conn.putheader(k, v)
            if body or method in ("PUT", "POST", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
        except OSError as e:
            conn.close()
            log.warning("faultproxy: upstream %s %s failed: %s", method, path, e)
            proxy._record(SeenRequest(method, path, headers, first, 502))
            self._send_error(502)
            return
        # Recorded before the client gets its answer, so a test that looks
        # right after its call returns finds the request.
        proxy._record(SeenRequest(method, path, headers, first, resp.status))
        try:
            for f in faults:
                if f.when == "after":
                    if f.kind == "delay":
                        proxy._sleep(f.seconds)
                    elif f.kind == "drop":
                        self.close_connection = True
                        return
                    if self._client_gone():
                        self.close_connection = True
                        return
            self._relay(method, resp)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its own timeout); nothing left to answer.
            self.close_connection = True
        finally:
            conn.close()

    def _relay(self, method: str, resp: http.client.HTTPResponse) -> None:
        self.send_response_only(resp.status, resp.reason)
        length = resp.getheader("Content-Length")
        # HEAD/204/304 answers carry no body even when they state a length.
        no_body = method == "HEAD" or resp.status in (204, 304) or resp.status < 200
        chunked = length is None and not no_body
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP:
                self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if no_body:
            return
        while chunk := resp.read(_CHUNK):
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self.wfile.write(chunk)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send_error(self, status: int) -> None:
        try:
            self._write_error(status)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write_error(self, status: int) -> None:
        code = _S3_CODES.get(status, "InjectedFault")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>injected by faultproxy</Message>"
            f"<Resource>{self.path}</Resource><RequestId>faultproxy</RequestId></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
