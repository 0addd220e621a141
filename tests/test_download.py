"""download() against a real local aiohttp app; decode_base64_image on its own."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from batchgen.api.download import SPILL_BYTES, decode_base64_image, download
from batchgen.errors import DownloadError, ForeignOriginError, TransportError

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
CAP = 10_000
SEEN = web.AppKey("seen", list[dict[str, str]])


async def _png(request: web.Request) -> web.Response:
    request.app[SEEN].append(dict(request.headers))
    return web.Response(body=PNG, content_type="image/png")


async def _octet(request: web.Request) -> web.Response:
    return web.Response(body=PNG, content_type="application/octet-stream")


async def _html(request: web.Request) -> web.Response:
    return web.Response(text="<html>denied</html>", content_type="text/html")


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * (CAP + 1), content_type="image/png")


async def _big_chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "image/png"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for _ in range(5):
        await resp.write(b"x" * (CAP // 4))
    await resp.write_eof()
    return resp


LARGE = PNG + bytes(range(256)) * (3 * SPILL_BYTES // 256)


async def _large(request: web.Request) -> web.Response:
    return web.Response(body=LARGE, content_type="image/png")


async def _gzip(request: web.Request) -> web.Response:
    resp = web.Response(body=PNG, content_type="image/png")
    resp.enable_compression(web.ContentCoding.gzip)
    return resp


def _status(code: int) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, text="no")

    return handler


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app[SEEN] = []
    app.router.add_get("/ok.png", _png)
    app.router.add_get("/octet", _octet)
    app.router.add_get("/html", _html)
    app.router.add_get("/big", _big)
    app.router.add_get("/big-chunked", _big_chunked)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/large", _large)
    app.router.add_get("/404", _status(404))
    app.router.add_get("/503", _status(503))
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def truncating_url() -> AsyncIterator[str]:
    """A raw socket server that promises 1000 bytes, sends 10 and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n"
                     b"\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    raw = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/img.png"
    raw.close()
    await raw.wait_closed()


async def fetch(session: aiohttp.ClientSession, url: str, dest: Path) -> object:
    return await download(session, url, dest, max_bytes=CAP, timeout_s=10.0)


async def test_download_writes_file_and_hash(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A small PNG comes back in memory (nothing written: the delivery step writes it once,
    in place) with its size, SHA-256 and content type."""
    dest = tmp_path / "a.tmp"
    got = await download(session, str(server.make_url("/ok.png")), dest, max_bytes=CAP,
                         timeout_s=10.0)
    assert got.data == PNG and not dest.exists()
    assert (got.path, got.bytes, got.sha256, got.content_type) == (
        dest, len(PNG), hashlib.sha256(PNG).hexdigest(), "image/png")


async def test_download_sends_no_api_key(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The image host never sees an x-api-key header."""
    await fetch(session, str(server.make_url("/ok.png")), tmp_path / "a.tmp")
    seen = server.app[SEEN]
    assert seen and all("x-api-key" not in {k.lower() for k in h} for h in seen)


async def test_download_refuses_a_session_with_the_key(
    server: TestServer, tmp_path: Path
) -> None:
    """A session carrying x-api-key is refused before any request."""
    async with aiohttp.ClientSession(headers={"x-api-key": "SG_k"}) as keyed:
        with pytest.raises(ForeignOriginError):
            await fetch(keyed, str(server.make_url("/ok.png")), tmp_path / "a.tmp")
    assert server.app[SEEN] == []


async def test_octet_stream_is_accepted(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """application/octet-stream counts as an image."""
    got = await download(session, str(server.make_url("/octet")), tmp_path / "a.tmp",
                         max_bytes=CAP, timeout_s=10.0)
    assert got.bytes == len(PNG)


async def test_compressed_body_is_decoded(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A gzip-encoded image is stored decoded, without a false truncation alarm."""
    got = await download(session, str(server.make_url("/gzip")), tmp_path / "a.tmp",
                         max_bytes=CAP, timeout_s=10.0)
    assert got.data == PNG


@pytest.mark.parametrize(
    ("path", "retryable"),
    [("/html", False), ("/big", True), ("/big-chunked", True), ("/404", False),
     ("/503", True)],
)
async def test_download_failures_leave_no_file(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path, path: str,
    retryable: bool,
) -> None:
    """Wrong type, oversize and HTTP errors raise DownloadError and leave no partial file."""
    dest = tmp_path / "a.tmp"
    with pytest.raises(DownloadError) as info:
        await fetch(session, str(server.make_url(path)), dest)
    assert info.value.retryable is retryable
    assert not dest.exists()


async def test_truncated_body_is_retryable(
    truncating_url: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A body shorter than its Content-Length raises a retryable DownloadError, no file kept."""
    dest = tmp_path / "a.tmp"
    with pytest.raises(DownloadError) as info:
        await fetch(session, truncating_url, dest)
    assert info.value.retryable
    assert not dest.exists()


async def test_unreachable_host_is_transport_error(
    session: aiohttp.ClientSession, tmp_path: Path, truncating_url: str
) -> None:
    """A refused connection raises TransportError."""
    port = int(truncating_url.split(":")[2].split("/")[0])
    sock_url = f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/x.png"
    with pytest.raises(TransportError):
        await fetch(session, sock_url, tmp_path / "a.tmp")


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (base64.b64encode(PNG).decode(), "image/png"),
        ("data:image/webp;base64," + base64.b64encode(PNG).decode(), "image/webp"),
        (base64.b64encode(PNG).decode().rstrip("="), "image/png"),
        (base64.urlsafe_b64encode(PNG).decode(), "image/png"),
        (base64.encodebytes(PNG).decode(), "image/png"),
    ],
)
def test_decode_base64_image(tmp_path: Path, data: str, content_type: str) -> None:
    """Bare base64, unpadded, url-safe, wrapped, or a data: URL decode to the same file."""
    dest = tmp_path / "b.tmp"
    got = decode_base64_image(data, dest, CAP)
    assert dest.read_bytes() == PNG
    assert (got.bytes, got.content_type) == (len(PNG), content_type)
    assert got.sha256 == hashlib.sha256(PNG).hexdigest()


@pytest.mark.parametrize(
    "data",
    ["not base64 !!", "", "data:image/png,rawtext", base64.b64encode(b"x" * (CAP + 10)).decode()],
)
def test_decode_base64_rejects(tmp_path: Path, data: str) -> None:
    """Invalid, empty, non-base64 data URLs and oversize data raise and leave no file."""
    dest = tmp_path / "b.tmp"
    with pytest.raises(DownloadError):
        decode_base64_image(data, dest, CAP)
    assert not dest.exists()


async def test_large_image_written_whole(
    server: TestServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """An image past the in-memory spill size is written in batches, byte for byte."""
    dest = tmp_path / "a.tmp"
    got = await download(session, str(server.make_url("/large")), dest,
                         max_bytes=len(LARGE), timeout_s=10.0)
    assert dest.read_bytes() == LARGE
    assert got.sha256 == hashlib.sha256(LARGE).hexdigest()
