# Interface of fastcore._core.websocket: WebSocket scopes of the ASGI gateway
# (asgiref WebSocket spec 2.3, RFC 6455, RFC 7692's per-message-deflate).
# The gateway hands a handshake to WebSocketHandler.begin() from its on_head;
# the handler then owns the connection: the 101 makes it a tunnel
# (Connection.start_tunnel) whose bytes come to on_tunnel_data as frames.
# A WebSocket exchange ends once, through its finish(): the connection's
# exchange is dropped and the connection closes after its last frame.
from fastcore._core.connection cimport Connection, RequestHandler
from fastcore._core.loop cimport Loop


cdef class WebSocketHandler(RequestHandler):
    cdef object app
    cdef object aio                  # the asyncio loop
    cdef Loop loop
    cdef object gateway              # the AsgiGateway (its access_log, new_request_id, state)
    cdef set tasks                   # the gateway's running tasks (a handler's task joins them)
    cdef readonly set running        # the WebSocket applications' tasks among them (a stop waits for them)
    cdef object disconnected_error   # raised by send() once the client has gone (an OSError)
    cdef readonly set sockets        # WebSocket exchanges not finished yet
    cdef readonly bint draining
    cdef size_t max_size
    cdef size_t high_water
    cdef double ping_interval        # 0: no pings
    cdef double ping_timeout
    cdef bint deflate_allowed
    cdef bint server_header

    # a handshake: validates it (400, 426) or starts the application's task
    cdef int begin(self, Connection conn, dict scope, str raw_target) except -1
    cdef int go_away(self) except -1
