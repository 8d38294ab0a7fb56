from typing import List, Optional, Tuple, Union

_Bytes = Union[bytes, bytearray, memoryview]

DEFAULT_LIMITS: dict
HEAD_BUFFER: int

class ParseError(Exception):
    status: int
    def __init__(self, status: int, message: str) -> None: ...

def simd_level() -> int: ...
def set_simd_level(level: int) -> int: ...

class Message:
    version: str
    headers: List[Tuple[str, str]]
    body: bytes
    keep_alive: bool
    trailers: List[Tuple[str, str]]

class Request(Message):
    method: str
    target: str
    path: str
    query: str
    expect_continue: bool
    upgrade: Optional[str]
    content_length: Optional[int]
    chunked: bool

class Response(Message):
    status: int
    reason: str

class RequestParser:
    def __init__(self, *, max_body: int = ..., max_request_line: int = ..., max_header_bytes: int = ...,
                 max_headers: int = ..., max_chunk_line: int = ...) -> None: ...
    def feed(self, data: _Bytes) -> List[Request]: ...
    def read_from(self, fd: int, most: int) -> Tuple[int, List[Request]]: ...
    @property
    def buffer_size(self) -> int: ...

class ResponseParser:
    def __init__(self, *, max_body: int = ..., max_request_line: int = ..., max_header_bytes: int = ...,
                 max_headers: int = ..., max_chunk_line: int = ...) -> None: ...
    def feed(self, data: _Bytes, request_method: str = "GET") -> List[Response]: ...
    def finish(self) -> List[Response]: ...
    def read_from(self, fd: int, most: int) -> Tuple[int, List[Response]]: ...
    @property
    def buffer_size(self) -> int: ...
