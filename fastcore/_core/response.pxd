# Interface of fastcore._core.response: what every handler's responses share.
# One table of status reasons, the Date line (formatted once a second), and
# the short plain-text answer a server gives on its own (errors, 404, 503).
# Everything returns new or cached bytes; nothing here writes or blocks.

cdef bytes date_line()           # "Date: <IMF-fixdate>\r\n" for now, formatted once a second
cdef bytes reason(int status)    # b"Not Found"; b"Unknown" for a status not in the table
cdef bint is_token(bytes text)   # a non-empty HTTP token (RFC 9110 5.6.2)
cdef tuple header_pair(object item)  # an application's (name, value), checked (TypeError/ValueError)
cdef bytes status_line(int status)  # b"HTTP/1.1 404 Not Found\r\n", cached for the table's statuses
cdef bytes plain_response(int status, str message, bint keep_alive, bint no_body, bytes extra=*)
