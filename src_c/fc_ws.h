/* fc_ws: WebSocket frames (RFC 6455 section 5), plain C, no allocation.
 *
 * Contract: fc_ws_parse_header returns the header's length (2 to 14 bytes)
 * and fills the frame, or -2 if the header is not complete yet; it never
 * reads past at + len. What the frame means for the connection is decided
 * apart, by fc_ws_check: 0 when the frame may be taken, else the close code
 * the server fails the connection with:
 *
 *   unmasked client frame, RSV bits not negotiated, unknown opcode,
 *   fragmented or over-125-byte control frame, a continuation with no
 *   message begun, a new data frame inside a fragmented one,
 *   a 64-bit length with its top bit set (section 5.2)      -> 1002
 *   the message so far plus this frame over max_message     -> 1009
 *
 * Unmasking works 8 bytes at a time; the server's own frames are not masked
 * (section 5.1) and their header is written by fc_ws_write_header. */
#ifndef FC_WS_H
#define FC_WS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    FC_WS_CONTINUATION = 0x0,
    FC_WS_TEXT = 0x1,
    FC_WS_BINARY = 0x2,
    FC_WS_CLOSE = 0x8,
    FC_WS_PING = 0x9,
    FC_WS_PONG = 0xA,
};

enum {
    FC_WS_RSV1 = 0x40,  /* per-message-deflate's "compressed" bit (RFC 7692) */
    FC_WS_FIN = 0x80,
};

/* the largest header: 2 bytes, a 64-bit length, a 4-byte mask */
#define FC_WS_MAX_HEADER 14

typedef struct {
    uint8_t fin;         /* 1: the last frame of its message */
    uint8_t rsv;         /* the three RSV bits, in place (0x70 mask of the first byte) */
    uint8_t opcode;
    uint8_t masked;
    uint8_t mask[4];
    uint64_t length;     /* payload length */
} fc_ws_frame_t;

/* Parses a frame header from the first len bytes at `at`: its length, or
 * -2 when more bytes are needed. */
int fc_ws_parse_header(const uint8_t *at, size_t len, fc_ws_frame_t *frame);

/* The verdict on a parsed frame (see above). in_message: a fragmented
 * message has begun (a continuation is expected); rsv_allowed: RSV bits
 * the connection negotiated (FC_WS_RSV1 with per-message-deflate, else 0);
 * message_so_far: payload bytes of the message before this frame. */
int fc_ws_check(const fc_ws_frame_t *frame, int in_message, uint8_t rsv_allowed, uint64_t message_so_far,
                uint64_t max_message);

/* XORs n bytes with the mask, as if they started at byte `offset` of the
 * payload (a payload unmasked in pieces), 8 bytes at a time. */
void fc_ws_unmask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t offset);

/* Writes an unmasked frame header (first = FIN | RSV | opcode) for a
 * payload of `length` bytes into out (FC_WS_MAX_HEADER bytes of room);
 * returns its length (2, 4 or 10). */
int fc_ws_write_header(uint8_t *out, uint8_t first, uint64_t length);

/* 1 if code may be sent in a close frame (sections 7.4.1 and 7.4.2:
 * 1000-1003, 1007-1011, 1012-1014 as IANA registers them, 3000-4999), else 0. */
int fc_ws_close_code_valid(unsigned code);

#ifdef __cplusplus
}
#endif

#endif
