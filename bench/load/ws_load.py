"""WebSocket echo load client: N connections, each sending a text message
and waiting for its echo before the next (one in flight per connection).

    python -m bench.load.ws_load --port 8000 --connections 64 --duration 5 [--processes 2]

Prints one JSON line: {"messages": echoes received in the measured window,
"seconds": its length, "connections": N, "processes": P}.

A plain asyncio Protocol (on uvloop when installed) rather than the
`websockets` package: its frames are built once (masked with a fixed key,
which RFC 6455 allows the client to choose) and parsed by their two-byte
header, so the client spends a few microseconds a message and the server
stays the bottleneck. The harness checks that: the same run with two client
processes must not give more messages a second.
"""
import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import time

MASK = b"\x37\xfa\x21\x3d"


def client_frame(payload):
    """A masked text frame (payload under 126 bytes)."""
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + MASK + masked


class EchoClient(asyncio.Protocol):
    def __init__(self, host, port, frame, stats, ready):
        self.host, self.port = host, port
        self.frame = frame
        self.stats = stats
        self.ready = ready
        self.buffer = b""
        self.open = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                        .encode())

    def data_received(self, data):
        buffer = self.buffer + data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {buffer[:200]!r}")
            buffer = buffer[end + 4:]
            self.open = True
            self.ready.set_result(None) if not self.ready.done() else None
            self.transport.write(self.frame)
        at, n, echoes = 0, len(buffer), 0
        while n - at >= 2:
            opcode, length, head = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, 2
            if length == 126:
                if n - at < 4:
                    break
                length, head = int.from_bytes(buffer[at + 2:at + 4], "big"), 4
            elif length == 127:
                if n - at < 10:
                    break
                length, head = int.from_bytes(buffer[at + 2:at + 10], "big"), 10
            if n - at < head + length:
                break
            if opcode == 0x9:  # the server's keep-alive ping: answered
                payload = buffer[at + head:at + head + length]
                masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
                self.transport.write(bytes([0x8A, 0x80 | length]) + MASK + masked)
            elif opcode in (0x1, 0x2):
                echoes += 1
            at += head + length
        self.buffer = buffer[at:]
        if echoes:
            self.stats[0] += echoes
            for _ in range(echoes):
                self.transport.write(self.frame)


async def run(host, port, connections, duration, size):
    loop = asyncio.get_running_loop()
    frame = client_frame(b"m" * size)
    stats = [0]
    clients = []
    for _ in range(connections):
        ready = loop.create_future()
        await loop.create_connection(lambda: EchoClient(host, port, frame, stats, ready), host, port)
        clients.append(ready)
    await asyncio.gather(*clients)
    await asyncio.sleep(0.2)  # every connection in its stride
    start_count, start = stats[0], time.monotonic()
    await asyncio.sleep(duration)
    return stats[0] - start_count, time.monotonic() - start


def one_process(args, connections, results):
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    results.put(asyncio.run(run(args.host, args.port, connections, args.duration, args.size)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.load.ws_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--size", type=int, default=64, help="message size in bytes (under 126)")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    results = multiprocessing.Queue()
    share = [args.connections // args.processes + (i < args.connections % args.processes)
             for i in range(args.processes)]
    workers = [multiprocessing.Process(target=one_process, args=(args, n, results)) for n in share]
    for worker in workers:
        worker.start()
    measured = [results.get(timeout=args.duration + 60) for _ in workers]
    for worker in workers:
        worker.join()
    print(json.dumps({"messages": sum(m for m, _ in measured), "seconds": max(s for _, s in measured),
                      "connections": args.connections, "processes": args.processes}))


if __name__ == "__main__":
    main()
