"""The test server's websocket, as the frontend gets it, with the standard library only.

    with HostSocket(comfy_host) as socket:       # connected as comfy_host.client_id, status received
        entry = comfy_host.run(prompt)
        socket.wait_for(done)                     # until done(messages) is true
    socket.messages                              # [(type, data), ...] in the order the server sent them

JSON messages are kept as (type, data). Of the binary ones, progress texts (the server's
send_progress_text) become ("progress_text", {"node": ..., "text": ...}), others (type number, size).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import threading
import time

PROGRESS_TEXT = 3  # protocol.BinaryEventTypes.TEXT


class HostSocket:
    def __init__(self, host, timeout: float = 30.0):
        self.host, self.timeout = host, timeout
        self.messages: list[tuple[object, object]] = []
        self._changed = threading.Condition()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> HostSocket:
        sock = socket.create_connection(("127.0.0.1", self.host.port), timeout=self.timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws?clientId={self.host.client_id} HTTP/1.1\r\nHost: 127.0.0.1:{self.host.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self._stream = sock.makefile("rb")
        status = self._stream.readline()
        if b" 101 " not in status:
            sock.close()
            raise ConnectionError(f"GET /ws answered {status!r}")
        while self._stream.readline() not in (b"\r\n", b""):
            pass
        sock.settimeout(None)
        self._sock = sock
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # The server registers the socket before it sends the first status.
        self.wait_for(lambda messages: any(kind == "status" for kind, _ in messages))
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):  # the server may have closed it first
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(5)

    def wait_for(self, done, timeout: float | None = None) -> list:
        """Waits until `done(messages)` is true; returns the messages."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._changed:
            while not done(self.messages):
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise TimeoutError(f"websocket: condition not met; got {self.messages[-20:]}")
                self._changed.wait(min(left, 0.5))
            return list(self.messages)

    def _frame(self) -> tuple[bool, int, bytes]:
        """(final, opcode, payload) of the next frame; the server's frames are never masked."""
        head = self._stream.read(2)
        if len(head) < 2:
            raise EOFError
        final, opcode, length = bool(head[0] & 0x80), head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack(">H", self._stream.read(2))
        elif length == 127:
            (length,) = struct.unpack(">Q", self._stream.read(8))
        return final, opcode, self._stream.read(length)

    def _read(self) -> None:
        parts, kind = [], None
        try:
            while True:
                final, opcode, payload = self._frame()
                if opcode == 8:
                    return
                if opcode not in (0, 1, 2):
                    continue  # ping / pong: the server sends none without a heartbeat
                kind = opcode or kind
                parts.append(payload)
                if final:
                    self._add(kind, b"".join(parts))
                    parts = []
        except (EOFError, OSError, ValueError):
            return
        finally:
            with self._changed:
                self._changed.notify_all()

    def _add(self, opcode: int, payload: bytes) -> None:
        if opcode == 1:
            message = json.loads(payload)
            item = (message.get("type"), message.get("data"))
        else:
            (event,) = struct.unpack(">I", payload[:4])
            if event == PROGRESS_TEXT:
                (size,) = struct.unpack(">I", payload[4:8])
                node = payload[8 : 8 + size].decode()
                item = ("progress_text", {"node": node, "text": payload[8 + size :].decode()})
            else:
                item = (event, len(payload))
        with self._changed:
            self.messages.append(item)
            self._changed.notify_all()
