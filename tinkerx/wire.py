"""Tinker's protobuf request bodies as they travel, read by both the server (``tinkerx.serve.codec``)
and the traffic recorder (``tinkerx.backends.tinker_traffic``): below both, so neither imports the other."""

from __future__ import annotations

from tinker.proto import tinker_public_pb2 as pb


def decompress(body: bytes, content_encoding: str | None) -> bytes:
    """The body as sent (trusted input: the server bounds its own with ``serve.codec.decompress``)."""
    if (content_encoding or "").lower() == "zstd":
        import zstandard  # deferred: only zstd-compressed bodies need it

        return zstandard.ZstdDecompressor().decompress(body)
    return body


def canonical_forward_backward(body: bytes) -> bytes:
    """A byte-stable form of a request body: protobuf map order is not fixed, so re-serialise."""
    msg = pb.ForwardBackwardRequest()
    msg.ParseFromString(body)
    return msg.SerializeToString(deterministic=True)
