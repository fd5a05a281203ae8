"""Wire formats shared by the native client and the echo workload: HTTP/2 frames, stateless HPACK
literals, gRPC length-prefixed messages, and fortio's `fgrpc.PingMessage` in protobuf encoding.
"""

from __future__ import annotations

import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types and flags (RFC 9113 section 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384

_HEAD = struct.Struct(">IBI")          # (length << 8 | type), flags, stream id


def frame(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    return _HEAD.pack(len(payload) << 8 | ftype, flags, stream_id) + payload


def frame_head(ftype: int, flags: int, stream_id: int, length: int) -> bytes:
    return _HEAD.pack(length << 8 | ftype, flags, stream_id)


def settings(**values: int) -> bytes:
    """A SETTINGS frame from `{id: value}` given as `s<id>=value` keywords."""
    payload = b"".join(struct.pack(">HI", int(k[1:]), v) for k, v in values.items())
    return frame(SETTINGS, 0, 0, payload)


def parse_settings(payload: bytes) -> dict[int, int]:
    return {k: v for k, v in struct.iter_unpack(">HI", payload[: len(payload) // 6 * 6])}


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def goaway(last_stream_id: int, code: int = 0) -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream_id, code))


def strip_padding(flags: int, payload: bytes, *, priority: bool = False) -> bytes:
    """A HEADERS/DATA payload without its padding (and priority fields for HEADERS)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        start, end = 1, end - payload[0]
    if priority and flags & PRIORITY_FLAG:
        start += 5
    return payload[start:end]


# --- HPACK without a dynamic table -----------------------------------------------------------

STATIC_STATUS = {200: 8, 204: 9, 206: 10, 304: 11, 400: 12, 404: 13, 500: 14}
STATIC_NAMES = {b":authority": 1, b":method": 2, b":path": 4, b":scheme": 6, b":status": 8,
                b"content-length": 28, b"content-type": 31, b"user-agent": 58}


def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(value: bytes) -> bytes:
    return hpack_int(len(value), 7) + value


def encode_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """A header block that leaves both HPACK tables alone (static indexes and literals without
    indexing), so the same bytes can be sent on every request of a connection."""
    out = bytearray()
    for name, value in headers:
        if name == b":method" and value in (b"GET", b"POST"):
            out += hpack_int(2 if value == b"GET" else 3, 7, 0x80)
        elif name == b":scheme" and value in (b"http", b"https"):
            out += hpack_int(6 if value == b"http" else 7, 7, 0x80)
        elif name == b":path" and value == b"/":
            out += hpack_int(4, 7, 0x80)
        elif name == b":status" and int(value) in STATIC_STATUS:
            out += hpack_int(STATIC_STATUS[int(value)], 7, 0x80)
        elif name in STATIC_NAMES:
            out += hpack_int(STATIC_NAMES[name], 4) + hpack_string(value)
        else:
            out += b"\x00" + hpack_string(name) + hpack_string(value)
    return bytes(out)


def _skip_int(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    value = block[pos] & ((1 << prefix_bits) - 1)
    pos += 1
    if value == (1 << prefix_bits) - 1:
        shift = 0
        while True:
            b = block[pos]
            pos += 1
            value += (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
    return value, pos


def hpack_is_stateless(block: bytes) -> bool:
    """True when decoding `block` changes no HPACK table (no incremental indexing, no size
    update): its decoding can then be reused while the table stays as it is."""
    pos, n = 0, len(block)
    try:
        while pos < n:
            b = block[pos]
            if b & 0x80:                      # indexed field
                _, pos = _skip_int(block, pos, 7)
            elif b & 0x40 or b & 0x20:        # literal with indexing, table size update
                return False
            else:                             # literal without indexing / never indexed
                index, pos = _skip_int(block, pos, 4)
                if index == 0:
                    length, pos = _skip_int(block, pos, 7)
                    pos += length
                length, pos = _skip_int(block, pos, 7)
                pos += length
    except IndexError:
        return False
    return pos == n


# --- gRPC messages and fortio's ping proto ---------------------------------------------------

GRPC_CODES = ("ok", "cancelled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
              "already_exists", "permission_denied", "resource_exhausted",
              "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal",
              "unavailable", "data_loss", "unauthenticated")
GRPC_STATUS_BASE = 600       # the native runner counts gRPC code c as status 600 + c
PING_PATH = b"/fgrpc.PingServer/Ping"
HEALTH_PATH = b"/grpc.health.v1.Health/Check"


def grpc_code_from_http(status: int) -> int:
    """gRPC's mapping of an HTTP status without grpc-status (doc/http-grpc-status-mapping)."""
    return {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}.get(status, 2)


def grpc_message(message: bytes) -> bytes:
    """A length-prefixed, uncompressed gRPC message."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return bytes((value,))
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def proto_fields(data: bytes) -> dict[int, int | bytes]:
    """The varint and length-delimited fields of a protobuf message (last one wins)."""
    out: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], pos = _read_varint(data, pos)
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated length-delimited field")
            out[number] = data[pos:pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def ping_message(*, seq: int = 0, ts_ns: int = 0, payload: bytes = b"",
                 delay_ns: int = 0) -> bytes:
    """fortio's `fgrpc.PingMessage{seq=1, ts=2, payload=3, delayNanos=4}`."""
    out = bytearray()
    if seq:
        out += b"\x08" + _varint(seq)
    if ts_ns:
        out += b"\x10" + _varint(ts_ns)
    if payload:
        out += b"\x1a" + _varint(len(payload)) + payload
    if delay_ns:
        out += b"\x20" + _varint(delay_ns)
    return bytes(out)


def health_response(serving: bool) -> bytes:
    """`grpc.health.v1.HealthCheckResponse{status}`: SERVING = 1, NOT_SERVING = 2."""
    return b"\x08" + _varint(1 if serving else 2)
