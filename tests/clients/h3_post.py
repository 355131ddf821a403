"""POSTs a file over HTTP/3 with aioquic (a client nobody on this project wrote).

usage: h3_post.py HOST PORT PATH BODYFILE CAFILE [HEADER=VALUE ...]
Prints the status line and the body; if the connection ends first (say, because aioquic found
the response malformed), prints the error code and reason and exits with status 1.
"""
import asyncio
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.done = None
        self.status = None
        self.body = b""

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            if self.done and not self.done.done():
                self.done.set_exception(
                    ConnectionError(
                        f"connection terminated before the response ended: "
                        f"error {event.error_code:#x}: {event.reason_phrase}"
                    )
                )
            return
        for ev in self.http.handle_event(event):
            if isinstance(ev, HeadersReceived):
                self.status = dict(ev.headers).get(b":status", b"?").decode()
            elif isinstance(ev, DataReceived):
                self.body += ev.data
            if getattr(ev, "stream_ended", False) and self.done and not self.done.done():
                self.done.set_result(True)

    async def post(self, authority, path, body, headers):
        stream = self._quic.get_next_available_stream_id()
        self.done = self._loop.create_future()
        self.http.send_headers(
            stream,
            [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", authority.encode()), (b":path", path.encode())]
            + headers,
        )
        self.http.send_data(stream, body, end_stream=True)
        self.transmit()
        await asyncio.wait_for(self.done, 20)


async def main():
    host, port, path, body_file, ca = sys.argv[1:6]
    headers = [tuple(h.encode().split(b"=", 1)) for h in sys.argv[6:]]
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    config.load_verify_locations(ca)
    config.server_name = "localhost"
    with open(body_file, "rb") as f:
        body = f.read()
    async with connect(host, int(port), configuration=config, create_protocol=H3Client) as client:
        try:
            await client.post(f"localhost:{port}", path, body, headers)
        except ConnectionError as e:
            print(e)
            sys.exit(1)
        print(client.status)
        print(client.body.decode())


asyncio.run(main())
