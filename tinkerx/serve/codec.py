"""The server's half of Tinker's protobuf wire format.

The SDK ships only the client's half (``tinker/proto/request_conv.py`` encodes requests,
``response_conv.py`` decodes responses); these functions are their inverses, written against the
same schema (``tinker/proto/tinker_public_pb2.py``) so the unmodified SDK reads what we write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tinker
from tinker.proto import tinker_public_pb2 as pb

from tinkerx import wire
from tinkerx.serve.http_errors import TooLarge
from tinkerx.wire import canonical_forward_backward  # noqa: F401 - the server's codec includes it

PROTO_CONTENT_TYPE = "application/x-protobuf"

_NUMPY_OF_DTYPE = {pb.DTYPE_FLOAT32: np.float32, pb.DTYPE_INT64: np.int64, pb.DTYPE_INT32: np.int32}
_DTYPE_NAME = {pb.DTYPE_FLOAT32: "float32", pb.DTYPE_INT64: "int64", pb.DTYPE_INT32: "int64"}
_PROTO_DTYPE = {"float32": pb.DTYPE_FLOAT32, "int64": pb.DTYPE_INT64}
_STOP_REASON = {"stop": pb.STOP_REASON_STOP, "length": pb.STOP_REASON_LENGTH}


@dataclass
class ForwardBackwardCall:
    model_id: str
    seq_id: int
    data: list[tinker.Datum]
    loss_fn: str
    loss_fn_config: dict[str, Any] | None
    forward_only: bool


def decompress(body: bytes, content_encoding: str | None, max_bytes: int | None = None) -> bytes:
    """The body as sent, at most ``max_bytes`` of it (the server's limit; a small bomb must not
    expand into memory)."""
    if max_bytes is None or (content_encoding or "").lower() != "zstd":
        return wire.decompress(body, content_encoding)
    import zstandard  # deferred: only zstd-compressed bodies need it

    # Read one byte past the limit, never more.
    try:
        data = zstandard.ZstdDecompressor().stream_reader(body).read(max_bytes + 1)
    except zstandard.ZstdError as exc:
        raise ValueError(f"the zstd-compressed body is corrupt: {exc}") from None
    if len(data) > max_bytes:
        raise TooLarge(f"the decompressed body exceeds this server's limit of {max_bytes} bytes (server.max_request_bytes)")
    return data


def decode_forward_backward(body: bytes) -> ForwardBackwardCall:
    msg = pb.ForwardBackwardRequest()
    msg.ParseFromString(body)
    config: dict[str, Any] = {}
    for key, value in msg.loss_fn_config.items():
        config[key] = value
    for key, value in msg.loss_fn_config_v2.items():  # v2 wins: it is the only one carrying strings
        config[key] = value.text if value.WhichOneof("value") == "text" else value.number
    return ForwardBackwardCall(
        model_id=msg.model_id,
        seq_id=msg.seq_id,
        data=[_datum(d) for d in msg.data],
        loss_fn=msg.loss_fn,
        loss_fn_config=config or None,
        forward_only=msg.forward_only,
    )


def numbering_of_forward_backward(body: bytes) -> tuple[str, int]:
    msg = pb.ForwardBackwardRequest()
    msg.ParseFromString(body)
    return msg.model_id, msg.seq_id


def _datum(msg: pb.Datum) -> tinker.Datum:
    tokens: list[int] = []
    for chunk in msg.model_input:
        if chunk.WhichOneof("chunk") != "encoded_text":
            raise ValueError(f"unsupported model input chunk {chunk.WhichOneof('chunk')!r}: tokens only")
        tokens.extend(np.frombuffer(chunk.encoded_text.tokens, dtype=np.int32).tolist())
    inputs = {name: _tensor(t) for name, t in msg.loss_fn_inputs.items()}
    return tinker.Datum(model_input=tinker.ModelInput.from_ints(tokens), loss_fn_inputs=inputs)


def _tensor(msg: pb.Tensor) -> tinker.TensorData:
    if msg.dtype not in _NUMPY_OF_DTYPE:
        raise ValueError(f"unsupported tensor dtype {msg.dtype}")
    if msg.WhichOneof("encoding") == "sparse_csr":
        raise ValueError("sparse loss_fn_inputs are not supported by tinkerx serve")
    array = np.frombuffer(msg.dense, dtype=_NUMPY_OF_DTYPE[msg.dtype]).copy()
    shape = list(msg.shape) or None
    if shape is not None:
        array = array.reshape(shape)
    return tinker.TensorData(data=array, dtype=_DTYPE_NAME[msg.dtype], shape=shape)


def encode_forward_backward_output(out: tinker.ForwardBackwardOutput) -> bytes:
    msg = pb.ForwardBackwardOutput(loss_fn_output_type=out.loss_fn_output_type or "ArrayRecord")
    for key, value in out.metrics.items():
        msg.metrics[key] = float(value)
    if out.loss_fn_outputs:
        record = msg.loss_fn_outputs.add(type_tag=msg.loss_fn_output_type, num_datums=len(out.loss_fn_outputs))
        for name in out.loss_fn_outputs[0]:
            record.fields[name].CopyFrom(_batched([d[name] for d in out.loss_fn_outputs]))
    return msg.SerializeToString()


def _batched(tensors: list[tinker.TensorData]) -> pb.BatchedTensor:
    # One flat buffer plus byte offsets per datum; every datum shares the trailing shape.
    dtype = tensors[0].dtype
    arrays = [np.ascontiguousarray(t.to_numpy(), dtype=np.dtype(dtype)) for t in tensors]
    offsets = np.cumsum([0] + [a.nbytes for a in arrays], dtype=np.int64)
    trailing = list(arrays[0].shape[1:])
    return pb.BatchedTensor(
        data=b"".join(a.tobytes() for a in arrays),
        offsets=offsets.tobytes(),
        dtype=_PROTO_DTYPE[dtype],
        trailing_shape=trailing,
    )


def encode_sample_response(resp: tinker.SampleResponse) -> bytes:
    msg = pb.SampleResponse()
    for seq in resp.sequences:
        out = msg.sequences.add(
            stop_reason=_STOP_REASON[seq.stop_reason],
            tokens=np.asarray(seq.tokens, dtype=np.int32).tobytes(),
        )
        if seq.logprobs is not None:
            out.logprobs = np.asarray(seq.logprobs, dtype=np.float32).tobytes()
    if resp.prompt_logprobs is not None:
        # The SDK reads NaN back as None (the first prompt token has no logprob).
        values = [np.nan if lp is None else lp for lp in resp.prompt_logprobs]
        msg.prompt_logprobs = np.asarray(values, dtype=np.float32).tobytes()
    return msg.SerializeToString()
