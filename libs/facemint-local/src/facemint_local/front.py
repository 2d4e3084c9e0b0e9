"""A round-robin TCP front for the gateway's replicas on one machine (``facemint up --replicas N``).

``python -m facemint_local.front --listen PORT --backend PORT --backend PORT ...`` accepts connections on
127.0.0.1:PORT and pipes each one, bytes unchanged, to the next backend in turn; a backend that refuses the
connection (a replica that is down or restarting) is skipped for the next. It balances connections, not requests,
as a Kubernetes Service does: a client that keeps its connection alive stays on one replica until it reconnects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal

log = logging.getLogger("facemint.front")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close the other side."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class Front:
    """Accepts on ``listen`` and hands every connection to the next backend that accepts it."""

    def __init__(self, listen: int, backends: list[int], host: str = "127.0.0.1") -> None:
        self.listen = listen
        self.backends = backends
        self.host = host
        self._turn = itertools.cycle(range(len(backends)))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in self.backends:
            port = self.backends[next(self._turn)]
            try:
                return await asyncio.wait_for(asyncio.open_connection(self.host, port), 5)
            except (OSError, TimeoutError):
                continue
        return None

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """Serve one client connection."""
        backend = await self._connect()
        if backend is None:
            log.warning("no gateway replica accepts connections")
            client_w.close()
            return
        backend_r, backend_w = backend
        try:
            await asyncio.gather(_pipe(client_r, backend_w), _pipe(backend_r, client_w))
        finally:
            for writer in (backend_w, client_w):
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        server = await asyncio.start_server(self.handle, self.host, self.listen, reuse_address=True)
        async with server:
            log.info("front on %s:%s for backends %s", self.host, self.listen, self.backends)
            await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the front until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m facemint_local.front", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1 to accept connections on")
    parser.add_argument("--backend", type=int, action="append", required=True, help="a replica's port (repeat)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [front] %(message)s")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Front(args.listen, args.backend).serve(stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
