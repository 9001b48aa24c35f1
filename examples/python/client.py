#!/usr/bin/env python3
"""A client of the vla-node bridge (protocol v1, docs/bridge.md) in plain Python.

Needs only pyzmq and msgpack (Debian: apt-get install -y python3-zmq python3-msgpack); no numpy.

    python3 client.py --endpoint tcp://127.0.0.1:5555 --synthetic
    python3 client.py --endpoint tcp://127.0.0.1:5555 --observation obs.json

An observation file is JSON: {"instruction": str, "state": [float, ...], "stamp": ms (optional),
"keep_count": int (optional), "image": {"encoding": "rgb8", "width": int, "height": int,
"file": path of the raw pixels, relative to the JSON file}} (or "encoding": "jpeg"/"png" and the
file holds the compressed bytes). The result is printed as one JSON object on stdout.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import msgpack
import zmq

PROTOCOL_VERSION = 1

# dtype -> (struct code, itemsize); data is always little-endian.
DTYPES = {
    "uint8": ("B", 1),
    "int8": ("b", 1),
    "uint16": ("H", 2),
    "int16": ("h", 2),
    "uint32": ("I", 4),
    "int32": ("i", 4),
    "uint64": ("Q", 8),
    "int64": ("q", 8),
    "float32": ("f", 4),
    "float64": ("d", 8),
}


class BridgeError(Exception):
    """An error reply: code is invalid, busy, stale, incompatible or internal."""

    def __init__(self, code, message, field=None):
        super().__init__(f"[{code}] {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field


def _no_extensions(code, data):
    raise ValueError(f"MessagePack extension type {code} is not part of the protocol")


def encode_array(values, dtype="float64"):
    """A 1-D wire array {dtype, shape, data} of numbers."""
    code, _ = DTYPES[dtype]
    return {
        "dtype": dtype,
        "shape": [len(values)],
        "data": struct.pack(f"<{len(values)}{code}", *values),
    }


def decode_array(array):
    """Nested lists of a wire array, checking that the byte length matches dtype and shape."""
    code, size = DTYPES[array["dtype"]]
    shape = list(array["shape"])
    count = math.prod(shape)
    if len(array["data"]) != count * size:
        raise ValueError(f"expected {count * size} bytes but received {len(array['data'])}")
    flat = list(struct.unpack(f"<{count}{code}", array["data"]))
    for dim in reversed(shape[1:]):
        flat = [flat[i : i + dim] for i in range(0, len(flat), dim)]
    return flat


class Client:
    """One DEALER socket; one request at a time, replies matched by id."""

    def __init__(self, endpoint, timeout_ms=15000, server_public_key=None, client_key_pair=None):
        """client_key_pair: (public, secret) Z85 strings, for a server with a client allow-list;
        default: a fresh pair (admitted only by servers without an allow-list)."""
        self.timeout_ms = timeout_ms
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if server_public_key:
            if client_key_pair:
                public, secret = (k.encode("ascii") for k in client_key_pair)
            else:
                public, secret = zmq.curve_keypair()
            self.socket.curve_publickey = public
            self.socket.curve_secretkey = secret
            self.socket.curve_serverkey = server_public_key.encode("ascii")
        self.socket.connect(endpoint)
        self.next_id = 1

    def request(self, body):
        request_id = self.next_id
        self.next_id += 1
        message = dict(body, v=PROTOCOL_VERSION, id=request_id)
        self.socket.send(msgpack.packb(message, use_bin_type=True))
        deadline = time.monotonic() + self.timeout_ms / 1000
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.socket.poll(int(left * 1000)):
                raise TimeoutError(f"no reply to {body['type']} within {self.timeout_ms} ms")
            frames = self.socket.recv_multipart()
            reply = msgpack.unpackb(frames[-1], raw=False, ext_hook=_no_extensions)
            if reply.get("id") != request_id:
                continue  # a late reply to an earlier request
            if reply.get("type") == "error":
                raise BridgeError(reply["code"], reply["message"], reply.get("field"))
            return reply

    def hello(self):
        return self.request({"type": "hello", "client": "examples/python/client.py"})

    def ping(self):
        return self.request({"type": "ping"})

    def reset(self):
        return self.request({"type": "reset"})

    def infer(self, instruction, state, image, stamp=None, keep_count=None):
        """image: {"encoding": "rgb8", "width", "height", "data": bytes} or {"encoding": "jpeg", "data"}."""
        body = {
            "type": "infer",
            "instruction": instruction,
            "state": encode_array(state, "float64"),
            "images": [image],
            "stamp": time.time() * 1000 if stamp is None else stamp,
        }
        if keep_count is not None:
            body["keep_count"] = keep_count
        return self.request(body)

    def close(self):
        self.socket.close()


def synthetic_observation(width=128, height=128):
    """A table-coloured frame with a red square, an instruction and a state."""
    pixels = bytearray()
    for y in range(height):
        for x in range(width):
            red = width // 4 <= x < width // 2 and height // 4 <= y < height // 2
            pixels += bytes((220, 40, 40) if red else (205, 195, 175))
    image = {"encoding": "rgb8", "width": width, "height": height, "data": bytes(pixels)}
    return {"instruction": "move to the red block", "state": [0.5, 0.5], "image": image}


def load_observation(path):
    with open(path, encoding="utf-8") as f:
        obs = json.load(f)
    spec = obs["image"]
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), spec["file"]), "rb") as f:
        data = f.read()
    image = {"encoding": spec["encoding"], "data": data}
    if spec["encoding"] not in ("jpeg", "png"):
        image["width"] = spec["width"]
        image["height"] = spec["height"]
    obs["image"] = image
    return obs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    parser.add_argument("--observation", help="observation JSON file (see the module docstring)")
    parser.add_argument("--synthetic", action="store_true", help="send a synthesised frame")
    parser.add_argument("--timeout-ms", type=int, default=15000)
    parser.add_argument("--server-public-key", help="Z85 CURVE public key of the server")
    parser.add_argument("--client-public-key", help="this client's Z85 CURVE public key (allow-listed)")
    parser.add_argument("--client-secret-key-file", help="file holding this client's Z85 CURVE secret key")
    args = parser.parse_args()
    if bool(args.client_public_key) != bool(args.client_secret_key_file):
        parser.error("give both --client-public-key and --client-secret-key-file, or neither")
    key_pair = None
    if args.client_public_key:
        with open(args.client_secret_key_file, encoding="ascii") as f:
            key_pair = (args.client_public_key.strip(), f.read().strip())
    if not args.observation and not args.synthetic:
        parser.error("give --observation FILE or --synthetic")
    obs = load_observation(args.observation) if args.observation else synthetic_observation()

    client = Client(args.endpoint, args.timeout_ms, args.server_public_key, key_pair)
    try:
        welcome = client.hello()
        client.ping()
        reply = client.infer(
            obs["instruction"],
            obs["state"],
            obs["image"],
            stamp=obs.get("stamp"),
            keep_count=obs.get("keep_count"),
        )
    except BridgeError as error:
        json.dump({"error": {"code": error.code, "message": error.message, "field": error.field}}, sys.stdout)
        sys.stdout.write("\n")
        return 1
    finally:
        client.close()

    chunk = reply["chunk"]
    json.dump(
        {
            "server": {
                "protocol": welcome["protocol"],
                "model": welcome["model"]["name"],
                "chunk_length": welcome["model"]["chunk_length"],
                "action_dim": welcome["model"]["action_dim"],
                "control_rate_hz": welcome["model"]["control_rate_hz"],
                "action_names": welcome["model"]["action_names"],
                "client_id": welcome["client_id"],
            },
            "dtype": reply["actions"]["dtype"],
            "shape": reply["actions"]["shape"],
            "actions": decode_array(reply["actions"]),
            "sequence": chunk["sequence"],
            "dt": chunk["dt"],
            "source_stamp": chunk["source_stamp"],
            "latency_ms": chunk["latency_ms"],
            "tokens_kept": chunk["tokens_kept"],
            "server_timing": reply["server_timing"],
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
