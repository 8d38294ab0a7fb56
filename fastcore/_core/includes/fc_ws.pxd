# Declarations of src_c/fc_ws.h (WebSocket frames: header parsing, the
# verdict on a frame, unmasking, the server's frame headers).
from libc.stdint cimport uint8_t, uint64_t


cdef extern from "fc_ws.h" nogil:
    enum:
        FC_WS_CONTINUATION
        FC_WS_TEXT
        FC_WS_BINARY
        FC_WS_CLOSE
        FC_WS_PING
        FC_WS_PONG
        FC_WS_RSV1
        FC_WS_FIN
        FC_WS_MAX_HEADER

    ctypedef struct fc_ws_frame_t:
        uint8_t fin
        uint8_t rsv
        uint8_t opcode
        uint8_t masked
        uint8_t mask[4]
        uint64_t length

    int fc_ws_parse_header(const uint8_t *at, size_t len, fc_ws_frame_t *frame)
    int fc_ws_check(const fc_ws_frame_t *frame, int in_message, uint8_t rsv_allowed, uint64_t message_so_far,
                    uint64_t max_message)
    void fc_ws_unmask(uint8_t *data, size_t n, const uint8_t *mask, uint64_t offset)
    int fc_ws_write_header(uint8_t *out, uint8_t first, uint64_t length)
    int fc_ws_close_code_valid(unsigned code)
