/* fc_ws: WebSocket frames (RFC 6455 section 5). Contract in fc_ws.h. */
#include "fc_ws.h"

#include <string.h>

int fc_ws_parse_header(const uint8_t *at, size_t len, fc_ws_frame_t *frame)
{
    size_t need = 2;
    uint64_t length;
    if (len < 2)
        return -2;
    frame->fin = (at[0] & FC_WS_FIN) != 0;
    frame->rsv = at[0] & 0x70;
    frame->opcode = at[0] & 0x0F;
    frame->masked = (at[1] & 0x80) != 0;
    length = at[1] & 0x7F;
    if (length == 126)
        need += 2;
    else if (length == 127)
        need += 8;
    if (frame->masked)
        need += 4;
    if (len < need)
        return -2;
    if (length == 126) {
        length = ((uint64_t)at[2] << 8) | at[3];
    } else if (length == 127) {
        length = 0;
        for (int i = 0; i < 8; ++i)
            length = (length << 8) | at[2 + i];
    }
    frame->length = length;
    if (frame->masked)
        memcpy(frame->mask, at + need - 4, 4);
    else
        memset(frame->mask, 0, 4);
    return (int)need;
}

int fc_ws_check(const fc_ws_frame_t *frame, int in_message, uint8_t rsv_allowed, uint64_t message_so_far,
                uint64_t max_message)
{
    int control = frame->opcode >= FC_WS_CLOSE;
    if (!frame->masked || frame->length >> 63)
        return 1002;
    switch (frame->opcode) {
    case FC_WS_CONTINUATION:
        if (!in_message || frame->rsv)  /* RSV1 belongs on a message's first frame only */
            return 1002;
        break;
    case FC_WS_TEXT:
    case FC_WS_BINARY:
        if (in_message || (frame->rsv & ~rsv_allowed))
            return 1002;
        break;
    case FC_WS_CLOSE:
    case FC_WS_PING:
    case FC_WS_PONG:
        break;
    default:
        return 1002;
    }
    if (control) {
        if (!frame->fin || frame->length > 125 || frame->rsv)
            return 1002;
        return 0;
    }
    if (frame->length > max_message || message_so_far > max_message - frame->length)
        return 1009;
    return 0;
}

void fc_ws_unmask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t offset)
{
    uint8_t key[8];
    uint64_t key64, word;
    size_t i = 0;
    for (int k = 0; k < 8; ++k)
        key[k] = mask[(offset + (uint64_t)k) & 3];
    memcpy(&key64, key, 8);
    /* memcpy in and out: no alignment assumed, compiled to plain loads and stores */
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, data + i, 8);
        word ^= key64;
        memcpy(data + i, &word, 8);
    }
    for (; i < n; ++i)
        data[i] ^= key[i & 7];
}

int fc_ws_write_header(uint8_t *out, uint8_t first, uint64_t length)
{
    out[0] = first;
    if (length < 126) {
        out[1] = (uint8_t)length;
        return 2;
    }
    if (length <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(length >> 8);
        out[3] = (uint8_t)length;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; ++i)
        out[2 + i] = (uint8_t)(length >> (56 - 8 * i));
    return 10;
}

int fc_ws_close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return 1;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}
