"""A single target endpoint that drops a connection before answering gets one retry, not a 502."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx

from tests.support.gateway_proc import GatewayProcess, routes

COMPLETION = b'{"id":"x","object":"chat.completion","created":1,"model":"target-model","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'


class DropFirstConnection:
    """HTTP/1.1 server: the first connection is closed after its request arrives, later ones answer."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        drop = self.connections == 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")), 0)
                await reader.readexactly(length)
                if drop:
                    return
                if head.startswith(b"GET"):
                    body = b'{"object":"list","data":[]}'
                else:
                    body = COMPLETION
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> "DropFirstConnection":
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def test_single_endpoint_dropped_connection_is_retried(tmp_path: Path) -> None:
    server = DropFirstConnection().start()
    try:
        config = routes(f"http://127.0.0.1:{server.port}/v1", server={"probe_interval_s": 60})
        with GatewayProcess(config, tmp_path) as gateway:
            response = httpx.post(
                gateway.base_url + "/chat/completions",
                json={"model": "test-model", "messages": [{"role": "user", "content": "Hello there."}]},
                headers={"x-mpr-refine": "off"},
                timeout=10,
            )
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "ok"
        assert server.connections >= 2
    finally:
        server.stop()
