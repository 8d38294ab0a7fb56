# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""WebSocket scopes of the ASGI gateway (asgiref WebSocket spec 2.3 over
RFC 6455, with RFC 7692's per-message-deflate as an option).

Theory of operation
-------------------
The HTTP gateway (asgi.pyx) builds the scope of every request; a request
that asks to upgrade to websocket is handed here from its on_head (the
connection's handler becomes this one), so an HTTP request pays nothing
for WebSockets but the test of its Upgrade field the gateway makes anyway.

- Handshake (RFC 6455 4.2.1): GET, HTTP/1.1, a Connection field with the
  token "upgrade", a Sec-WebSocket-Key of 16 base64 bytes, no body: else
  400; Sec-WebSocket-Version other than 13: 426 naming 13. A valid one
  starts the application's task, whose first receive() is
  websocket.connect.
- websocket.accept answers 101 (with the subprotocol, the application's
  headers, per-message-deflate when offered and allowed) and turns the
  connection into a tunnel: the core reads raw bytes and hands them to
  on_tunnel_data. websocket.close before accept, or returning without
  accepting, answers 403; websocket.http.response.start/body before
  accept answer that response (the denial-response extension).
- Frames are parsed and checked in C (fc_ws): a frame the protocol forbids
  fails the connection with 1002, a message over ws_max_size with 1009,
  text that is not UTF-8 with 1007 (checked on the whole message).
  Fragments are joined; pings are answered with a pong by the server
  itself; a close is echoed and ends the connection.
- Backpressure both ways, the HTTP gateway's rule: messages the
  application has not taken past write_buffer_high pause reading (its
  receive() resumes it); send() waits while the connection's output is
  past write_buffer_high, so a client that does not read slows the
  application rather than growing the server's queue.
- Keep-alive pings every ws_ping_interval; a pong later than
  ws_ping_timeout fails the connection (1011), and the client's answer to
  the server's close frame is waited for as long.
- Graceful stop (go_away): open WebSockets get a close frame 1001 and
  their applications websocket.disconnect 1001 at once, so their handlers
  run their cleanup while the worker drains.

Invariants: a WebSocket's task is started once; finish() runs once and is
the only way out (after it the connection is not this exchange's);
websocket.disconnect is queued once; nothing is written after a close frame
but nothing (the connection's own shutdown).
"""
import collections
import logging
import os
# base64, hashlib and zlib are imported at the first handshake: an HTTP-only
# worker does not carry them (a full garbage collection walks every object
# a module brings, and the cost gate's asgi_hello counts it)

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t

from fastcore._core.connection cimport Connection, RequestHandler, S_APP, S_CLOSED
from fastcore._core.loop cimport Loop
from fastcore._core.response cimport date_line, header_pair, is_token, plain_response, reason
from fastcore._core.stats cimport WorkerStats
from fastcore._core.includes.fc_ws cimport (
    FC_WS_BINARY, FC_WS_CLOSE, FC_WS_CONTINUATION, FC_WS_FIN, FC_WS_MAX_HEADER, FC_WS_PING, FC_WS_PONG,
    FC_WS_RSV1, FC_WS_TEXT, fc_ws_check, fc_ws_close_code_valid, fc_ws_frame_t, fc_ws_parse_header,
    fc_ws_unmask, fc_ws_write_header,
)

cdef object error_log = logging.getLogger("fastcore.error")

cdef bytes GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455 section 1.3
cdef dict ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}
cdef bytes EMPTY = b""
cdef bytes DEFLATE_TAIL = b"\x00\x00\xff\xff"               # RFC 7692 section 7.2.1
# fields of the 101 that are the server's to write
cdef frozenset OWN_FIELDS = frozenset([b"connection", b"upgrade", b"sec-websocket-accept", b"sec-websocket-protocol",
                                       b"sec-websocket-extensions", b"content-length", b"transfer-encoding",
                                       b"keep-alive", b"date", b"server"])

# a frame's payload copied at once, with its header, below this size: one
# write of one object; above it header and payload go as two pieces of one writev
DEF JOIN_BELOW = 4096

cdef enum WsState:
    W_CONNECTING   # handshake received, the application has not answered
    W_OPEN         # accepted
    W_CLOSING      # the server sent its close frame, waits for the client's
    W_DENYING      # websocket.http.response.start received, its body pending
    W_DONE         # finished: the connection is no longer this exchange's


cdef bytes frame(uint8_t first, bytes payload):
    cdef uint8_t head[FC_WS_MAX_HEADER]
    cdef int n = fc_ws_write_header(head, first, <uint64_t>PyBytes_GET_SIZE(payload))
    return PyBytes_FromStringAndSize(<char *>head, n) + payload


cdef bytes close_payload(int code, str reason_text):
    if code == 1005 or code == 0:
        return EMPTY  # "no status": an empty close frame
    encoded = reason_text.encode("utf-8") if reason_text else EMPTY
    if len(encoded) > 123:
        encoded = encoded[:123].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + encoded


cdef list field_tokens(list headers, bytes name):
    """The comma-separated, lower-cased tokens of every `name` field."""
    cdef list out = []
    for field, value in headers:
        if field == name:
            out.extend(token.strip().lower() for token in value.split(b",") if token.strip())
    return out


cdef bytes field_value(list headers, bytes name):
    for field, value in headers:
        if field == name:
            return value
    return None


cdef tuple deflate_agreement(list headers):
    """The first per-message-deflate offer the server can take (RFC 7692
    section 7.1): (response value, server_no_context_takeover,
    client_no_context_takeover, server window bits), or None."""
    for field, value in headers:
        if field != b"sec-websocket-extensions":
            continue
        for offer in value.split(b","):
            params = [p.strip() for p in offer.split(b";")]
            if params[0].lower() != b"permessage-deflate":
                continue
            server_reset = client_reset = False
            bits = 15
            answer = [b"permessage-deflate"]
            acceptable = True
            for param in params[1:]:
                key, _, arg = param.partition(b"=")
                key = key.strip().lower()
                arg = arg.strip().strip(b'"')
                if key == b"server_no_context_takeover" and not arg:
                    server_reset = True
                    answer.append(b"server_no_context_takeover")
                elif key == b"client_no_context_takeover" and not arg:
                    client_reset = True
                    answer.append(b"client_no_context_takeover")
                elif key == b"server_max_window_bits" and arg.isdigit() and 9 <= int(arg) <= 15:
                    # 8 is valid on the wire but zlib's raw deflate cannot keep to it
                    bits = int(arg)
                    answer.append(b"server_max_window_bits=" + arg)
                elif key == b"client_max_window_bits" and (not arg or (arg.isdigit() and 8 <= int(arg) <= 15)):
                    pass  # the client's window, up to 15, which our inflater takes
                else:
                    acceptable = False
                    break
            if acceptable:
                return b"; ".join(answer), server_reset, client_reset, bits
    return None


cdef class WebSocket:
    """One WebSocket connection, between the core and the application's task."""
    cdef readonly dict scope
    cdef WebSocketHandler handler
    cdef Connection conn
    cdef str raw_target
    cdef WsState state
    cdef bint connect_given           # websocket.connect was returned
    cdef bint disconnect_queued
    cdef int close_code               # the code websocket.disconnect carries
    cdef str close_reason
    cdef object events                # deque of (event, payload size) receive() has not returned
    cdef size_t queued                # the sum of their payload sizes
    cdef object waiter                # future receive() waits on, or None
    cdef object drain_waiter          # future send() waits on while the output is above high water
    # incoming frames
    cdef bytearray partial            # bytes of a frame not complete yet, or None
    cdef bint in_message              # a fragmented message has begun
    cdef int message_opcode
    cdef bint message_compressed
    cdef list fragments
    cdef uint64_t message_size
    # per-message-deflate, when agreed
    cdef bint deflate
    cdef uint8_t rsv_allowed
    cdef object inflater
    cdef object deflater
    cdef bint client_reset            # client_no_context_takeover: a new inflater per message
    cdef bint server_reset
    cdef int window_bits
    # timers (asyncio's)
    cdef object ping_timer
    cdef object pong_timer
    cdef object close_timer
    # the denial response
    cdef int deny_status
    cdef list deny_lines
    cdef list deny_body
    cdef double began

    # -- the application's side (runs in its task) ------------------------------

    async def receive(self):
        cdef dict event
        while True:
            if not self.connect_given:
                self.connect_given = True
                return {"type": "websocket.connect"}
            if self.events:
                event, size = self.events.popleft()
                if size:
                    self.queued -= <size_t>size
                    if self.queued < self.handler.high_water and self.state != W_DONE:
                        self.conn.resume_reading()
                return event
            if self.state == W_DONE:
                return {"type": "websocket.disconnect", "code": self.close_code, "reason": self.close_reason}
            self.waiter = self.handler.aio.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    async def send(self, message):
        kind = message["type"]
        self.handler.loop.now = self.handler.loop.clock()  # the send timeout counts from now, not the last core turn
        if kind == "websocket.send":
            if self.state != W_OPEN:
                if self.state == W_CONNECTING:
                    raise RuntimeError("websocket.send before websocket.accept")
                raise self.handler.disconnected_error("the WebSocket is closed")
            data = message.get("bytes")
            if data is not None:
                self.send_message(FC_WS_BINARY, bytes(data))
            else:
                text = message.get("text")
                if text is None:
                    raise ValueError("websocket.send with neither bytes nor text")
                self.send_message(FC_WS_TEXT, text.encode("utf-8"))
            while self.conn.out.pending >= self.handler.high_water and self.state == W_OPEN:
                self.drain_waiter = self.handler.aio.create_future()
                self.conn.wait_writable()
                try:
                    await self.drain_waiter
                finally:
                    self.drain_waiter = None
            if self.state == W_DONE:
                raise self.handler.disconnected_error("the WebSocket is closed")
        elif kind == "websocket.accept":
            if self.state != W_CONNECTING:
                if self.state == W_DONE:
                    raise self.handler.disconnected_error("the client has disconnected")
                raise RuntimeError("websocket.accept after the handshake was answered")
            self.accept(message.get("subprotocol"), message.get("headers") or ())
        elif kind == "websocket.close":
            code = message.get("code") or 1000
            reason_text = message.get("reason") or ""
            if self.state == W_CONNECTING:
                self.answer(403, [], b"")  # closed before accept: the handshake is refused
            elif self.state == W_OPEN:
                if not fc_ws_close_code_valid(code):
                    raise ValueError(f"websocket.close: invalid close code {code!r}")
                self.begin_close(code, reason_text)
            elif self.state == W_DENYING:
                raise RuntimeError("websocket.close while a denial response is being sent")
            # closing or done already: nothing more to say
        elif kind == "websocket.http.response.start":
            if self.state != W_CONNECTING:
                raise RuntimeError("websocket.http.response.start after the handshake was answered")
            self.deny_status = message["status"]
            if type(self.deny_status) is not int or not 100 <= self.deny_status <= 999:
                raise ValueError(f"invalid status {self.deny_status!r} from the application")
            self.deny_lines = self.header_lines(message.get("headers") or ())
            self.deny_body = []
            self.state = W_DENYING
        elif kind == "websocket.http.response.body":
            if self.state != W_DENYING:
                raise RuntimeError("websocket.http.response.body without websocket.http.response.start")
            self.deny_body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self.answer(self.deny_status, self.deny_lines, EMPTY.join(self.deny_body))
        else:
            raise ValueError(f"unexpected ASGI message {kind!r} for a websocket scope")

    async def run(self, app):
        """The application's task: runs it and settles what it left undone."""
        try:
            await app(self.scope, self.receive, self.send)
        except Exception as error:
            if self.state == W_DONE and isinstance(error, OSError):
                return  # the disconnect, passed through by the application
            error_log.error("error in the ASGI application for WebSocket %s", self.raw_target,
                            exc_info=(type(error), error, error.__traceback__))
            if self.state == W_CONNECTING:
                self.answer(500, [], b"Internal Server Error\n")
            elif self.state == W_DENYING:
                self.cut()
            elif self.state == W_OPEN:
                self.begin_close(1011, "")
            return
        except BaseException:
            # cancelled (the worker stops): not ours to swallow
            if self.state != W_DONE and self.conn.fd >= 0:
                self.cut()
            raise
        if self.state == W_CONNECTING:
            self.answer(403, [], b"")  # returned without accepting
        elif self.state == W_DENYING:
            error_log.error("the application returned before its denial response ended for %s", self.raw_target)
            self.cut()
        elif self.state == W_OPEN:
            self.begin_close(1000, "")

    # -- the handshake's answer --------------------------------------------------

    cdef list header_lines(self, object headers):
        cdef list lines = []
        for item in headers:
            name, value = header_pair(item)
            if name.lower() in OWN_FIELDS:
                continue
            lines.append(name + b": " + value + b"\r\n")
        return lines

    cdef int accept(self, object subprotocol, object headers) except -1:
        cdef WebSocketHandler handler = self.handler
        cdef list headers_in = self.scope["headers"]
        cdef list parts = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"]
        cdef tuple agreement = None
        import base64, hashlib, zlib
        key = field_value(headers_in, b"sec-websocket-key").strip()
        accept_key = base64.b64encode(hashlib.sha1(key + GUID).digest())
        lines = self.header_lines(headers)
        parts.append(b"Sec-WebSocket-Accept: " + accept_key + b"\r\n")
        if subprotocol is not None:
            if not isinstance(subprotocol, str) or not is_token(subprotocol.encode("latin-1", "replace")):
                raise ValueError(f"websocket.accept: invalid subprotocol {subprotocol!r}")
            parts.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("ascii") + b"\r\n")
        if handler.deflate_allowed:
            agreement = deflate_agreement(headers_in)
        if agreement is not None:
            parts.append(b"Sec-WebSocket-Extensions: " + agreement[0] + b"\r\n")
            self.deflate = True
            self.rsv_allowed = FC_WS_RSV1
            self.server_reset = agreement[1]
            self.client_reset = agreement[2]
            self.window_bits = agreement[3]
            self.inflater = zlib.decompressobj(-15)
            self.deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.window_bits)
        parts.extend(lines)
        parts.append(date_line())
        if handler.server_header:
            parts.append(b"Server: fastcore\r\n")
        parts.append(b"\r\n")
        head = EMPTY.join(parts)
        handler.loop.now = handler.loop.clock()
        self.account(101, 0)
        if self.conn.state != S_APP:
            # the client went (S_CLOSED) while the application decided
            self.gone(1006, "")
            return 0
        self.state = W_OPEN
        self.conn.send(head)
        self.conn.flush()
        if self.conn.state == S_CLOSED:
            return 0  # on_close has run: gone
        self.conn.start_tunnel()  # bytes the client sent after its head come to on_tunnel_data now
        if self.state == W_OPEN:
            if handler.draining:
                self.begin_close(1001, "")
            elif handler.ping_interval > 0:
                self.ping_timer = handler.aio.call_later(handler.ping_interval, self.send_ping)
        return 0

    cdef int answer(self, int status, list lines, bytes body) except -1:
        """An HTTP response instead of the upgrade (a refusal, a denial), then close."""
        cdef WebSocketHandler handler = self.handler
        cdef list parts
        if status == 403 and not lines and not body:
            head = plain_response(403, "the application refused the WebSocket", False, False)
        else:
            parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason(status))]
            parts.extend(lines)
            parts.append(b"Content-Length: %d\r\n" % len(body))
            parts.append(date_line())
            if handler.server_header:
                parts.append(b"Server: fastcore\r\n")
            parts.append(b"Connection: close\r\n\r\n")
            head = EMPTY.join(parts) + body
        handler.loop.now = handler.loop.clock()
        self.account(status, len(head))
        self.state = W_DONE
        self.close_code = 1006
        handler.sockets.discard(self)
        if self.conn.state == S_CLOSED:
            return 0
        self.conn.send(head)
        self.conn.end_response(False)
        handler.loop._run_deferred()
        return 0

    cdef int account(self, int status, size_t sent) except -1:
        cdef Connection conn = self.conn
        cdef WorkerStats stats = conn.server.stats
        cdef double seconds = conn.loop.clock() - self.began
        if stats is not None:
            stats.record_response(status, sent, seconds)
            stats.s.route_asgi += 1
        log = self.handler.gateway.access_log
        if log is not None:
            scope = self.scope
            fields = {}
            for name, value in scope["headers"]:
                if name in (b"user-agent", b"referer", b"x-request-id"):
                    fields.setdefault(name, value.decode("latin-1"))
            log.log(scope["client"][0] if scope["client"] else "", "GET", self.raw_target, "HTTP/1.1", status,
                    sent, int(seconds * 1e6), fields.get(b"user-agent", ""), fields.get(b"referer", ""),
                    fields.get(b"x-request-id") or self.handler.gateway.new_request_id())
        return 0

    # -- frames out --------------------------------------------------------------

    cdef int send_message(self, int opcode, bytes payload) except -1:
        cdef uint8_t first = FC_WS_FIN | opcode
        if self.deflate:
            import zlib
            if self.server_reset:
                self.deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.window_bits)
            payload = self.deflater.compress(payload) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
            if payload.endswith(DEFLATE_TAIL):
                payload = payload[:-4]
            first |= FC_WS_RSV1
        self.write_frame(first, payload)
        return 0

    cdef int write_frame(self, uint8_t first, bytes payload) except -1:
        cdef uint8_t head[FC_WS_MAX_HEADER]
        cdef int n
        cdef Connection conn = self.conn
        if PyBytes_GET_SIZE(payload) < JOIN_BELOW:
            conn.send(frame(first, payload))
        else:
            n = fc_ws_write_header(head, first, <uint64_t>PyBytes_GET_SIZE(payload))
            conn.send(PyBytes_FromStringAndSize(<char *>head, n))
            conn.send(payload)
        conn.flush()
        conn.tunnel_active()
        return 0

    cdef int begin_close(self, int code, str reason_text) except -1:
        """The server's close frame; the connection ends when the client's
        answers it, or ws_ping_timeout later."""
        if self.state != W_OPEN:
            return 0
        self.state = W_CLOSING
        self.stop_pings()
        self.write_frame(FC_WS_FIN | FC_WS_CLOSE, close_payload(code, reason_text))
        if self.state == W_CLOSING:
            self.close_timer = self.handler.aio.call_later(self.handler.ping_timeout, self.close_late)
        return 0

    def close_late(self):
        self.close_timer = None
        if self.state == W_CLOSING:
            self.queue_disconnect(1006, "")
            self.cut()

    def send_ping(self):
        self.ping_timer = None
        if self.state != W_OPEN:
            return
        self.handler.loop.now = self.handler.loop.clock()
        self.write_frame(FC_WS_FIN | FC_WS_PING, os.urandom(4))
        if self.state == W_OPEN:
            self.pong_timer = self.handler.aio.call_later(self.handler.ping_timeout, self.pong_late)

    def pong_late(self):
        self.pong_timer = None
        if self.state == W_OPEN:
            self.fail(1011, "keepalive ping timeout")

    cdef int stop_pings(self) except -1:
        if self.ping_timer is not None:
            self.ping_timer.cancel()
            self.ping_timer = None
        if self.pong_timer is not None:
            self.pong_timer.cancel()
            self.pong_timer = None
        return 0

    # -- frames in (core callbacks) ---------------------------------------------

    cdef int feed(self, const char *at, size_t n) except -1:
        """Bytes from the client: every complete frame is taken; a partial
        one waits in `partial` (at most ws_max_size and a header: a larger
        frame is refused from its header)."""
        cdef const uint8_t *p
        cdef size_t avail, pos = 0, left
        cdef int header, code
        cdef fc_ws_frame_t fr
        cdef bytes payload
        cdef bytearray buffered = self.partial
        if buffered is not None:
            buffered.extend((<char *>at)[:n])
            p = <const uint8_t *>PyByteArray_AS_STRING(buffered)
            avail = <size_t>PyByteArray_GET_SIZE(buffered)
        else:
            p = <const uint8_t *>at
            avail = n
        while pos < avail and (self.state == W_OPEN or self.state == W_CLOSING):
            header = fc_ws_parse_header(p + pos, avail - pos, &fr)
            if header < 0:
                break
            code = fc_ws_check(&fr, self.in_message, self.rsv_allowed, self.message_size, self.handler.max_size)
            if code:
                self.fail(code, "message too big" if code == 1009 else "protocol error")
                return 0
            left = avail - pos - <size_t>header
            if left < fr.length:
                break
            payload = PyBytes_FromStringAndSize(<const char *>(p + pos + header), <Py_ssize_t>fr.length)
            fc_ws_unmask(<uint8_t *>PyBytes_AS_STRING(payload), <size_t>fr.length, fr.mask, 0)
            pos += <size_t>header + <size_t>fr.length
            self.on_frame(&fr, payload)
        if self.state != W_OPEN and self.state != W_CLOSING:
            self.partial = None
        elif pos == avail:
            self.partial = None
        elif buffered is not None:
            if pos:
                del buffered[:pos]
        else:
            self.partial = bytearray((<char *>at)[pos:n])
        return 0

    cdef int on_frame(self, fc_ws_frame_t *fr, bytes payload) except -1:
        cdef int opcode = fr.opcode
        if opcode == FC_WS_PING:
            if self.state == W_OPEN:
                self.write_frame(FC_WS_FIN | FC_WS_PONG, payload)
            return 0
        if opcode == FC_WS_PONG:
            if self.pong_timer is not None:
                self.pong_timer.cancel()
                self.pong_timer = None
                if self.state == W_OPEN and self.handler.ping_interval > 0:
                    self.ping_timer = self.handler.aio.call_later(self.handler.ping_interval, self.send_ping)
            return 0
        if opcode == FC_WS_CLOSE:
            return self.on_close_frame(payload)
        if self.state == W_CLOSING:
            return 0  # data after our close frame: the application will not read it
        if opcode != FC_WS_CONTINUATION:
            self.message_opcode = opcode
            self.message_compressed = (fr.rsv & FC_WS_RSV1) != 0
            if fr.fin:
                return self.on_message(payload)
            self.in_message = True
            self.fragments = [payload]
            self.message_size = <uint64_t>PyBytes_GET_SIZE(payload)
            return 0
        self.fragments.append(payload)
        self.message_size += <uint64_t>PyBytes_GET_SIZE(payload)
        if fr.fin:
            payload = EMPTY.join(self.fragments)
            self.fragments = None
            self.in_message = False
            self.message_size = 0
            return self.on_message(payload)
        return 0

    cdef int on_message(self, bytes payload) except -1:
        cdef dict event
        cdef size_t limit = self.handler.max_size
        if self.message_compressed:
            import zlib
            if self.client_reset:
                self.inflater = zlib.decompressobj(-15)
            try:
                payload = self.inflater.decompress(payload + DEFLATE_TAIL, limit + 1)
            except zlib.error:
                self.fail(1007, "invalid compressed data")
                return 0
            if <size_t>PyBytes_GET_SIZE(payload) > limit:
                self.fail(1009, "message too big")
                return 0
        if self.message_opcode == FC_WS_TEXT:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(1007, "invalid UTF-8 in a text message")
                return 0
            event = {"type": "websocket.receive", "text": text}
        else:
            event = {"type": "websocket.receive", "bytes": payload}
        self.events.append((event, PyBytes_GET_SIZE(payload)))
        self.queued += <size_t>PyBytes_GET_SIZE(payload)
        if self.queued >= self.handler.high_water:
            self.conn.pause_reading()  # receive() resumes
        self.wake()
        return 0

    cdef int on_close_frame(self, bytes payload) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
        cdef int code = 1005
        cdef str reason_text = ""
        if n == 1:
            self.fail(1002, "close frame of one byte")
            return 0
        if n >= 2:
            code = int.from_bytes(payload[:2], "big")
            if not fc_ws_close_code_valid(code):
                self.fail(1002, "invalid close code")
                return 0
            try:
                reason_text = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                self.fail(1007, "invalid UTF-8 in a close reason")
                return 0
        if self.state == W_OPEN:
            # the client closes: echo its code (RFC 6455 section 5.5.1)
            self.stop_pings()
            self.state = W_CLOSING
            self.write_frame(FC_WS_FIN | FC_WS_CLOSE, payload[:2])
        self.queue_disconnect(code, reason_text)
        self.finish()
        return 0

    cdef int fail(self, int code, str reason_text) except -1:
        """Fails the WebSocket connection (RFC 6455 section 7.1.7): a close
        frame with the code (unless one was sent), the application told,
        the connection ended."""
        if self.state == W_OPEN:
            self.state = W_CLOSING
            self.stop_pings()
            self.write_frame(FC_WS_FIN | FC_WS_CLOSE, close_payload(code, reason_text))
        self.queue_disconnect(code, reason_text)
        self.finish()
        return 0

    # -- the end -----------------------------------------------------------------

    cdef int queue_disconnect(self, int code, str reason_text) except -1:
        if not self.disconnect_queued:
            self.disconnect_queued = True
            self.close_code = code
            self.close_reason = reason_text
            self.events.append(({"type": "websocket.disconnect", "code": code, "reason": reason_text}, 0))
            self.wake()
        return 0

    cdef int finish(self) except -1:
        """The exchange is over: the connection closes once its last frame
        is out (the server closes first, RFC 6455 section 7.1.1)."""
        if self.state == W_DONE:
            return 0
        self.release()
        if self.conn.state != S_CLOSED and self.conn.exchange is self:
            self.conn.exchange = None
            self.conn.end_response(False)
            self.handler.loop._run_deferred()
        return 0

    cdef int cut(self) except -1:
        """The connection ends now, without a closing handshake."""
        if self.state == W_DONE:
            return 0
        self.release()
        if self.conn.exchange is self:
            self.conn.exchange = None
        self.conn.close()
        return 0

    cdef int gone(self, int code, str reason_text) except -1:
        """The connection is gone under the exchange (on_close)."""
        self.queue_disconnect(code, reason_text)
        self.release()
        return 0

    cdef int release(self) except -1:
        self.state = W_DONE
        self.stop_pings()
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        self.partial = None
        self.fragments = None
        self.handler.sockets.discard(self)
        if not self.disconnect_queued:
            self.queue_disconnect(1006, "")
        self.wake()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)
        return 0

    cdef int wake(self) except -1:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        return 0


cdef class WebSocketHandler(RequestHandler):
    """Runs the WebSocket scopes of one ASGI application for a worker."""

    def __cinit__(self, app, config, Loop loop, aio, gateway, set tasks, disconnected_error):
        self.app = app
        self.aio = aio
        self.loop = loop
        self.gateway = gateway
        self.tasks = tasks
        self.disconnected_error = disconnected_error
        self.sockets = set()
        self.running = set()
        self.max_size = config.ws_max_size
        self.high_water = config.write_buffer_high
        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.deflate_allowed = config.ws_per_message_deflate
        self.server_header = config.server_header

    cdef int begin(self, Connection conn, dict scope, str raw_target) except -1:
        cdef WebSocket ws
        cdef list headers = scope["headers"]
        cdef bytes key
        import base64
        refusal = None
        status = 400
        extra = b""
        if scope["method"] != "GET" or scope["http_version"] != "1.1":
            refusal = "a WebSocket handshake is a GET request in HTTP/1.1"
        elif b"upgrade" not in field_tokens(headers, b"connection"):
            refusal = "a WebSocket handshake needs Connection: Upgrade"
        elif field_value(headers, b"content-length") not in (None, b"0") or \
                field_value(headers, b"transfer-encoding") is not None:
            refusal = "a WebSocket handshake has no body"
        else:
            key = field_value(headers, b"sec-websocket-key")
            try:
                valid_key = key is not None and len(base64.b64decode(key.strip(), validate=True)) == 16
            except ValueError:
                valid_key = False
            if not valid_key:
                refusal = "a WebSocket handshake needs a Sec-WebSocket-Key of 16 base64-encoded bytes"
            elif field_value(headers, b"sec-websocket-version") is None or \
                    field_value(headers, b"sec-websocket-version").strip() != b"13":
                refusal = "this server speaks WebSocket version 13"
                status = 426
                extra = b"Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"
        if refusal is not None:
            conn.send_error(status, refusal, False, True, extra)
            return 0
        ws = WebSocket.__new__(WebSocket)
        ws.handler = self
        ws.conn = conn
        ws.raw_target = raw_target
        ws.events = collections.deque()
        ws.began = conn.loop.clock()
        ws.close_reason = ""
        scope["type"] = "websocket"
        scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
        scope["asgi"] = ASGI_VERSION
        del scope["method"]
        scope["subprotocols"] = [token.decode("latin-1") for token in
                                 field_tokens_raw(headers, b"sec-websocket-protocol")]
        scope["extensions"] = {"websocket.http.response": {}}
        ws.scope = scope
        conn.exchange = ws
        self.sockets.add(ws)
        task = self.aio.create_task(ws.run(self.app))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return 0

    cdef int go_away(self) except -1:
        """Graceful stop: a close frame 1001 to every open WebSocket, and
        websocket.disconnect 1001 to its application now."""
        cdef WebSocket ws
        self.draining = True
        self.loop.now = self.loop.clock()
        for ws in list(self.sockets):
            if ws.state == W_OPEN:
                ws.begin_close(1001, "the server is stopping")
                ws.queue_disconnect(1001, "the server is stopping")
        return 0

    # -- RequestHandler ----------------------------------------------------------

    cdef tuple refused_request(self, Connection conn):
        ex = conn.exchange
        if not isinstance(ex, WebSocket):
            return None
        return "GET", (<WebSocket>ex).raw_target, "HTTP/1.1"

    cdef int on_end(self, Connection conn) except -1:
        return 0  # no body (begin refused one): the application's task has the handshake

    cdef int on_tunnel_data(self, Connection conn, const char *at, size_t n) except -1:
        cdef WebSocket ws = <WebSocket>conn.exchange
        if ws is not None:
            ws.feed(at, n)
        return 0

    cdef int on_writable(self, Connection conn) except -1:
        cdef WebSocket ws = <WebSocket>conn.exchange
        if ws is not None and ws.drain_waiter is not None and not ws.drain_waiter.done():
            ws.drain_waiter.set_result(None)
        return 0

    cdef int on_close(self, Connection conn) except -1:
        cdef WebSocket ws = <WebSocket>conn.exchange
        if ws is not None:
            ws.gone(1006, "")
        return 0


cdef list field_tokens_raw(list headers, bytes name):
    """The comma-separated tokens of every `name` field, case kept."""
    cdef list out = []
    for field, value in headers:
        if field == name:
            out.extend(token.strip() for token in value.split(b",") if token.strip())
    return out
