"""A minimal Hive Metastore Thrift client (binary protocol, buffered socket, no SASL).

Just the calls the smoke check needs (``get_all_databases``, ``create_database``,
``get_database``, ``drop_database``), written from ``hive_metastore.thrift`` of Hive 2.3 to 4.x
(the field ids of these calls and of ``Database`` are the same in every one of them). Standard
library only, so the CLI keeps no Thrift dependency; the encoding is the Thrift binary
protocol in strict mode, which every metastore server accepts.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

# Thrift wire types
STOP, BOOL, BYTE, DOUBLE, I16, I32, I64, STRING, STRUCT, MAP, SET, LIST = (
    0,
    2,
    3,
    4,
    6,
    8,
    10,
    11,
    12,
    13,
    14,
    15,
)
CALL, REPLY, EXCEPTION = 1, 2, 3
VERSION_1 = 0x80010000

#: (result field id -> exception name) of the calls used here
_EXCEPTIONS: dict[str, dict[int, str]] = {
    "get_all_databases": {1: "MetaException"},
    "create_database": {
        1: "AlreadyExistsException",
        2: "InvalidObjectException",
        3: "MetaException",
    },
    "get_database": {1: "NoSuchObjectException", 2: "MetaException"},
    "drop_database": {
        1: "NoSuchObjectException",
        2: "InvalidOperationException",
        3: "MetaException",
    },
}


class ThriftError(Exception):
    """The server answered with an exception (``name`` is its Thrift type)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


# ---------------------------------------------------------------------------------- encode


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!i", len(data)) + data


def _field(ftype: int, fid: int, payload: bytes) -> bytes:
    return struct.pack("!bh", ftype, fid) + payload


def encode_database(name: str, location: str, description: str, owner: str) -> bytes:
    """A ``Database`` struct: name (1), description (2), locationUri (3), parameters (4),
    ownerName (6), ownerType (7, USER = 1)."""
    params = {"created-by": "lakehouse smoke"}
    body = _field(STRING, 1, _string(name))
    body += _field(STRING, 2, _string(description))
    if location:
        body += _field(STRING, 3, _string(location))
    entries = b"".join(_string(k) + _string(v) for k, v in params.items())
    body += _field(MAP, 4, struct.pack("!bbi", STRING, STRING, len(params)) + entries)
    body += _field(STRING, 6, _string(owner))
    body += _field(I32, 7, struct.pack("!i", 1))
    return body + bytes([STOP])


def encode_call(method: str, seqid: int, args: bytes) -> bytes:
    """A CALL message: header, the args struct (fields already encoded), STOP."""
    return struct.pack("!I", VERSION_1 | CALL) + _string(method) + struct.pack("!i", seqid) + args


# ---------------------------------------------------------------------------------- decode


class _Reader:
    def __init__(self, recv: Any) -> None:
        self._recv = recv

    def read(self, n: int) -> bytes:
        return self._recv(n)

    def i8(self) -> int:
        return struct.unpack("!b", self.read(1))[0]

    def i16(self) -> int:
        return struct.unpack("!h", self.read(2))[0]

    def i32(self) -> int:
        return struct.unpack("!i", self.read(4))[0]

    def string(self) -> str:
        return self.read(self.i32()).decode("utf-8", "replace")

    def value(self, ftype: int) -> Any:
        if ftype == BOOL:
            return self.i8() != 0
        if ftype == BYTE:
            return self.i8()
        if ftype == I16:
            return self.i16()
        if ftype == I32:
            return self.i32()
        if ftype == I64:
            return struct.unpack("!q", self.read(8))[0]
        if ftype == DOUBLE:
            return struct.unpack("!d", self.read(8))[0]
        if ftype == STRING:
            return self.string()
        if ftype == STRUCT:
            return self.struct()
        if ftype == MAP:
            ktype, vtype, size = self.i8(), self.i8(), self.i32()
            return {self.value(ktype): self.value(vtype) for _ in range(size)}
        if ftype in (SET, LIST):
            etype, size = self.i8(), self.i32()
            return [self.value(etype) for _ in range(size)]
        raise ValueError(f"unknown Thrift type {ftype}")

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        while True:
            ftype = self.i8()
            if ftype == STOP:
                return fields
            fid = self.i16()
            fields[fid] = self.value(ftype)


def decode_reply(method: str, reader: _Reader) -> Any:
    """The success value of a REPLY to ``method``; raises :class:`ThriftError` for a declared
    exception or an application exception."""
    word = reader.i32() & 0xFFFFFFFF
    if word & 0xFFFF0000 != VERSION_1:
        raise ValueError("not a Thrift binary-protocol answer (is this a metastore?)")
    mtype = word & 0xFF
    name = reader.string()
    reader.i32()  # seqid
    body = reader.struct()
    if mtype == EXCEPTION:
        raise ThriftError("TApplicationException", str(body.get(1, "")))
    if name != method:
        raise ValueError(f"answer to {name!r}, expected {method!r}")
    for fid, exc_name in _EXCEPTIONS.get(method, {}).items():
        if fid in body:
            message = body[fid].get(1, "") if isinstance(body[fid], dict) else ""
            raise ThriftError(exc_name, str(message))
    return body.get(0)


# ---------------------------------------------------------------------------------- client


class MetastoreClient:
    """One connection to a metastore: ``with MetastoreClient(host, port) as hms: ...``."""

    def __init__(self, host: str, port: int, timeout: float = 20.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._seq = 0

    def __enter__(self) -> MetastoreClient:
        self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _recv_exact(self, n: int) -> bytes:
        assert self._sock is not None
        chunks, missing = [], n
        while missing:
            chunk = self._sock.recv(missing)
            if not chunk:
                raise ConnectionError("the metastore closed the connection mid-answer")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def call(self, method: str, args: bytes = b"") -> Any:
        if self._sock is None:
            raise RuntimeError("use MetastoreClient as a context manager")
        self._seq += 1
        self._sock.sendall(encode_call(method, self._seq, args + bytes([STOP])))
        return decode_reply(method, _Reader(self._recv_exact))

    def get_all_databases(self) -> list[str]:
        return list(self.call("get_all_databases") or [])

    def create_database(self, name: str, location: str = "", description: str = "") -> None:
        db = encode_database(name, location, description, owner="lakehouse-smoke")
        self.call("create_database", _field(STRUCT, 1, db))

    def get_database(self, name: str) -> dict[int, Any]:
        return dict(self.call("get_database", _field(STRING, 1, _string(name))) or {})

    def drop_database(self, name: str, *, delete_data: bool = True, cascade: bool = True) -> None:
        args = _field(STRING, 1, _string(name))
        args += _field(BOOL, 2, bytes([1 if delete_data else 0]))
        args += _field(BOOL, 3, bytes([1 if cascade else 0]))
        self.call("drop_database", args)
