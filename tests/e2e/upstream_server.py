"""A plain HTTP/1.1 server on the standard library, run as a process by the
proxy tests: `python upstream_server.py NAME (PORT | HOST:PORT | unix:PATH)`
(PORT alone listens on 127.0.0.1). It prints
`ready` once it listens. Endpoints:

    /id                     its NAME
    /headers                the request head it received, as JSON
    /sleep?SECONDS          answers after sleeping
    /upload                 reads the body (length or chunked): "SIZE SHA256"
    /download?N             N bytes (a repeating pattern), Content-Length
    /chunked?N              N bytes, chunked
    /close-after-body       reads the body, then closes without answering
    /reset-mid-body?N       reads N bytes of the body, then resets the connection (RST)
    /connections            how many connections it has accepted
    /health                 200, or 503 after /sick (and 200 again after /well)
"""
import base64
import hashlib
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[1]
PATTERN = bytes(range(256)) * 256  # 64 KiB
state = {"connections": 0, "sick": False}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body go out as two writes

    def setup(self):
        super().setup()
        with lock:
            state["connections"] += 1

    def log_message(self, *args):
        pass

    def reply(self, body, status=200, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            digest, size = hashlib.sha256(), 0
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return size, digest
                left = n
                while left:
                    piece = self.rfile.read(min(left, 1 << 20))
                    digest.update(piece)
                    left -= len(piece)
                size += n
                self.rfile.readline()
        length = int(self.headers.get("Content-Length", "0"))
        digest, left = hashlib.sha256(), length
        while left:
            piece = self.rfile.read(min(left, 1 << 20))
            if not piece:
                break
            digest.update(piece)
            left -= len(piece)
        return length - left, digest

    def stream(self, n, chunked):
        if self.command == "HEAD" and self.path.endswith("&body-on-head"):
            # a broken server: a body after a HEAD response (the proxy must not pass it on)
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(PATTERN[:n])
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(n))
        self.end_headers()
        left = n
        while left:
            piece = PATTERN[:min(left, len(PATTERN))]
            if chunked:
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                self.wfile.write(piece)
            left -= len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def websocket_echo(self):
        """RFC 6455: the handshake, then every frame's payload back (text or
        binary, one frame each, unmasked), until a close frame."""
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, size = head[0] & 0x0F, head[1] & 0x7F
            if size == 126:
                size = int.from_bytes(self.rfile.read(2), "big")
            elif size == 127:
                size = int.from_bytes(self.rfile.read(8), "big")
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(size)))
            if opcode == 8:
                self.wfile.write(b"\x88\x00")
                return
            if size < 126:
                frame = bytes([0x80 | opcode, size])
            elif size < 65536:
                frame = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
            else:
                frame = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
            self.wfile.write(frame + payload)
            self.wfile.flush()

    def handle_any(self):
        path, _, query = self.path.partition("?")
        if path.endswith("/ws") and self.headers.get("Upgrade", "").lower() == "websocket":
            self.close_connection = True
            return self.websocket_echo()
        if path.endswith("/id"):
            size, _ = self.read_body()
            return self.reply(NAME.encode())
        if path.endswith("/headers"):
            size, digest = self.read_body()
            document = {"method": self.command, "path": self.path, "headers": list(self.headers.items()),
                        "body_size": size, "name": NAME, "peer": self.client_address[0]}
            return self.reply(json.dumps(document).encode(), content_type="application/json")
        if path.endswith("/hop-response"):
            # hop-by-hop fields in a response: one the Connection field names
            body = b"hop-by-hop response"
            self.send_response(200)
            self.send_header("Connection", "keep-alive, X-Upstream-Secret")
            self.send_header("X-Upstream-Secret", "hop")
            self.send_header("Keep-Alive", "timeout=5")
            self.send_header("X-Kept", "end-to-end")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if path.endswith("/sleep"):
            time.sleep(float(query or "1"))
            return self.reply(NAME.encode())
        if path.endswith("/upload"):
            size, digest = self.read_body()
            return self.reply(f"{size} {digest.hexdigest()}".encode())
        if path.endswith("/download"):
            return self.stream(int(query.split("&")[0]), chunked=False)
        if path.endswith("/chunked"):
            return self.stream(int(query), chunked=True)
        if path.endswith("/close-after-body"):
            self.read_body()
            with open(f"{NAME}.posts", "a") as f:
                f.write(self.command + "\n")
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if path.endswith("/reset-mid-body"):
            left = int(query)
            while left:
                piece = self.rfile.read(min(left, 1 << 16))
                if not piece:
                    break
                left -= len(piece)
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # with linger 0: an RST, not a FIN
            return None
        if path.endswith("/connections"):
            return self.reply(str(state["connections"]).encode())
        if path.endswith("/sick"):
            state["sick"] = True
            return self.reply(b"sick")
        if path.endswith("/well"):
            state["sick"] = False
            return self.reply(b"well")
        if path.endswith("/health"):
            return self.reply(b"no" if state["sick"] else b"ok", 503 if state["sick"] else 200)
        return self.reply(NAME.encode() + b" " + self.path.encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


class UnixHandler(Handler):
    disable_nagle_algorithm = False  # no TCP_NODELAY on a unix socket


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("unix", 0)


def main():
    where = sys.argv[2]
    if where.startswith("unix:"):
        server = UnixServer(where[5:], UnixHandler)
    else:
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer.request_queue_size = 1024
        host, _, port = where.rpartition(":")
        server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
