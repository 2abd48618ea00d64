"""Secure key injection across two processes: ``python -m minidriver.examples.inject``.

A *server* process (NO_CARD_MODE, holds the SCP03 test keys, never opens PC/SC) and a *client*
process (holds the reader, holds no key) talk over a Unix socket in a private directory. The
server opens an SCP03 session with the card through the client, injects a fresh P-256 key into
the key-management slot (container 2, PIV 9D) and changes the PIN; the client relays opaque
blobs and prints each one (hex, truncated). Neither the key nor a PIN ever reaches the client.

Works against the card of ``scripts/up`` (default profile: SCP03 key set FF = the GP test key
40..4F, PIN 123456). Run it twice and pass ``--old-pin 654321`` the second time (the PIN was
changed), or set it back with ``--new-pin 123456``.

Roles (the default runs both as child processes)::

    python -m minidriver.examples.inject --role server --socket PATH [--public-key-out FILE] [--key-file PEM]
    python -m minidriver.examples.inject --role client --socket PATH [--reader NAME] [--hold]

Frames on the socket: 4-byte big-endian length + JSON. ``--hold`` keeps the client alive after
its work until stdin closes (tests read its memory then).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

DEFAULT_KEYS_HEX = "404142434445464748494A4B4C4D4E4F"  # GP test key, the default profile's key set FF
KEY_MANAGEMENT_CONTAINER = 2  # PIV 9D (minidriver.cardmod.piv_map)
SHOW = 24  #: hex digits of a blob the client prints


def send(sock: socket.socket, obj: dict[str, Any]) -> None:
    data = json.dumps(obj).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)


def recv(sock: socket.socket) -> dict[str, Any]:
    head = _exact(sock, 4)
    (size,) = struct.unpack(">I", head)
    if size > 1 << 20:
        raise ValueError(f"frame of {size} bytes")
    obj = json.loads(_exact(sock, size))
    if not isinstance(obj, dict):
        raise ValueError("a frame is a JSON object")
    return obj


def _exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("peer closed the socket")
        out += chunk
    return out


def short(blob: bytes) -> str:
    text = blob.hex().upper()
    return f"{text[:SHOW]}… ({len(blob)} bytes)" if len(text) > SHOW else f"{text} ({len(blob)} bytes)"


# -- server ---------------------------------------------------------------------------------------------
def run_server(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

    from minidriver.cardmod import CardAcquireContext, CardData, Out, ScardCode, code_name, ski
    from minidriver.cardmod.ski_local import PIN_CHANGE_FLAG_CHANGEPIN, import_struct
    from minidriver.cardmod.ski_state import configure_server
    from minidriver.cardmod.ski_wire import CSF_CHANGE_AUTHENTICATOR, CSF_IMPORT_KEYPAIR, CardChangeAuthenticator
    from minidriver.cardmod.types import CARD_SECURE_KEY_INJECTION_NO_CARD_MODE, PinId
    from minidriver.scpbase import StaticKeys

    server = CardData()
    code = CardAcquireContext(server, CARD_SECURE_KEY_INJECTION_NO_CARD_MODE)
    if code:
        print(f"server: CardAcquireContext(NO_CARD_MODE): {code_name(code)}", file=sys.stderr)
        return 1
    configure_server(server, StaticKeys.same(bytes.fromhex(args.scp_key), kvn=0xFF), level=int(args.level, 16))
    path = Path(args.socket)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is 0600 from its first moment
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    listener.listen(1)
    print(f"server: no card; waiting for the client on {path}", flush=True)
    conn, _ = listener.accept()
    with conn, listener:

        def shared(message: bytes | None) -> tuple[bytes, int]:
            out, key = Out[bytearray](), Out[int]()
            rc = ski.CardGetSharedKeyHandle(server, message, len(message or b""), out, Out[int](), key)
            if rc:
                raise RuntimeError(f"CardGetSharedKeyHandle: {code_name(rc)}")
            return bytes(out.value or b""), key.value or 0

        def secure(function: str, structure: bytes) -> tuple[int, bytes]:
            items, count = Out[list[Any]](), Out[int]()
            rc = ski.MDEncryptData(server, hkey, function, structure, len(structure), 0, items, count)
            if rc:
                raise RuntimeError(f"MDEncryptData: {code_name(rc)}")
            send(conn, {"function": function, "blobs": [bytes(i.pbEncryptedData).hex() for i in items.value or []]})
            reply = recv(conn)
            return int(reply["code"]), bytes.fromhex(reply["response"])

        hello, _ = shared(None)
        send(conn, {"message": hello.hex()})
        auth, hkey = shared(bytes.fromhex(recv(conn)["message"]))
        send(conn, {"message": auth.hex()})
        if recv(conn).get("code") != 0:
            print("server: the card refused EXTERNAL AUTHENTICATE", file=sys.stderr)
            return 1
        print(f"server: SCP03 session open (level {args.level}), handle {hkey}", flush=True)

        key = ec.generate_private_key(ec.SECP256R1())
        if args.key_file:  # a key made elsewhere (tests look for it in the client's memory)
            loaded = load_pem_private_key(Path(args.key_file).read_bytes(), None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
                raise ValueError("--key-file must hold a P-256 private key (PEM)")
            key = loaded
        point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        rc, _ = secure(CSF_IMPORT_KEYPAIR, import_struct(KEY_MANAGEMENT_CONTAINER, key, key_exchange=True))
        if rc:
            print(f"server: key import failed: {code_name(rc)}", file=sys.stderr)
            return 1
        print(f"server: injected a fresh P-256 key into container 2 (slot 9D); public key {point.hex()}", flush=True)
        if args.public_key_out:
            Path(args.public_key_out).write_text(point.hex() + "\n")
        del key
        change = CardChangeAuthenticator(
            PIN_CHANGE_FLAG_CHANGEPIN, PinId.ROLE_USER, args.old_pin.encode(), PinId.ROLE_USER, args.new_pin.encode()
        )
        rc, response = secure(CSF_CHANGE_AUTHENTICATOR, bytes(change))
        tries = int.from_bytes(response[4:8], "little") if len(response) == 8 else None
        if rc:
            hint = (
                " (was the PIN changed by an earlier run? pass --old-pin)" if rc == ScardCode.SCARD_W_WRONG_CHV else ""
            )
            print(f"server: PIN change failed: {code_name(rc)}, tries left {tries}{hint}", file=sys.stderr)
            return 1
        print(f"server: PIN changed (tries left {tries})", flush=True)
        send(conn, {"done": True})
    return 0


# -- client ---------------------------------------------------------------------------------------------
def run_client(args: argparse.Namespace) -> int:
    from minidriver.cardmod import CardAcquireContext, CardDeleteContext, Out, code_name, ski
    from minidriver.cardmod.helper import card_data_for_reader, release
    from minidriver.cardmod.ski_wire import CardEncryptedData

    card = card_data_for_reader(args.reader)
    code = CardAcquireContext(card, 0)
    if code:
        print(f"client: CardAcquireContext: {code_name(code)}", file=sys.stderr)
        return 1
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(100):  # the server may still be binding its socket
        try:
            sock.connect(args.socket)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.05)
    else:
        print(f"client: no server on {args.socket}", file=sys.stderr)
        return 1
    hkey = 0
    try:
        for round_no in (1, 2):
            message = bytes.fromhex(recv(sock)["message"])
            print(f"client: round {round_no}: server -> card  {short(message)}", flush=True)
            out, key = Out[bytearray](), Out[int]()
            code = ski.CardGetSharedKeyHandle(card, message, len(message), out, Out[int](), key)
            if code:
                print(f"client: CardGetSharedKeyHandle: {code_name(code)}", file=sys.stderr)
                send(sock, {"code": code, "message": ""})
                return 1
            if round_no == 1:
                answer = bytes(out.value or b"")
                print(f"client: round 1: card -> server  {short(answer)}", flush=True)
                send(sock, {"message": answer.hex()})
            else:
                hkey = key.value or 0
                send(sock, {"code": 0})
        print(f"client: session handle {hkey}", flush=True)
        while True:
            job = recv(sock)
            if job.get("done"):
                break
            blobs = [bytes.fromhex(b) for b in job["blobs"]]
            for blob in blobs:
                print(f"client: {job['function']}: server -> card  {short(blob)}", flush=True)
            items = [CardEncryptedData(b, len(b)) for b in blobs]
            buf, size = bytearray(16), Out[int]()
            code = ski.CardProcessEncryptedData(card, hkey, job["function"], items, len(items), buf, 16, size, 0)
            response = bytes(buf[: size.value or 0])
            print(f"client: {job['function']}: {code_name(code)}, response {response.hex() or '-'}", flush=True)
            send(sock, {"code": code, "response": response.hex()})
    finally:
        sock.close()
        if hkey:
            ski.CardDestroyKey(card, hkey)
        CardDeleteContext(card)
        release(card)
    print("client: done; no key or PIN passed through this process in the clear", flush=True)
    if args.hold:
        print(f"client: holding, pid {os.getpid()}", flush=True)
        sys.stdin.read()
    return 0


# -- both ----------------------------------------------------------------------------------------------
def run_both(args: argparse.Namespace) -> int:
    base = [sys.executable, "-m", "minidriver.examples.inject"]
    common = ["--level", args.level, "--old-pin", args.old_pin, "--new-pin", args.new_pin, "--scp-key", args.scp_key]
    with tempfile.TemporaryDirectory(prefix="vcard-ski-") as tmp:  # 0700
        path = str(Path(tmp) / "ski.sock")
        server = subprocess.Popen([*base, "--role", "server", "--socket", path, *common])
        client_cmd = [*base, "--role", "client", "--socket", path]
        if args.reader:
            client_cmd += ["--reader", args.reader]
        client = subprocess.Popen(client_cmd)
        rc_client = client.wait()
        try:
            rc_server = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            rc_server = 1
    return rc_client or rc_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidriver.examples.inject", description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("both", "server", "client"), default="both")
    parser.add_argument("--socket", help="Unix socket path (server and client roles)")
    parser.add_argument("--reader", help="PC/SC reader (default: the first reader with a card)")
    parser.add_argument("--level", default="03", choices=("03", "13", "33"), help="SCP03 security level")
    parser.add_argument("--old-pin", default="123456")
    parser.add_argument("--new-pin", default="654321")
    parser.add_argument("--scp-key", default=DEFAULT_KEYS_HEX, help="SCP03 static key (ENC=MAC=DEK), hex")
    parser.add_argument("--public-key-out", help="server: write the injected key's public point (hex) here")
    parser.add_argument("--key-file", help="server: inject this P-256 private key (PEM) instead of a fresh one")
    parser.add_argument("--hold", action="store_true", help="client: wait for stdin to close before exiting")
    args = parser.parse_args(argv)
    if args.role != "both" and not args.socket:
        parser.error("--socket is required with --role server/client")
    try:
        if len(bytes.fromhex(args.scp_key)) not in (16, 24, 32):
            raise ValueError
    except ValueError:
        parser.error("--scp-key must be 16, 24 or 32 bytes of hex")
    for name in ("old_pin", "new_pin"):
        if not 1 <= len(getattr(args, name)) <= 8:
            parser.error(f"--{name.replace('_', '-')} must be 1-8 characters")
    roles = {"both": run_both, "server": run_server, "client": run_client}
    try:
        return roles[args.role](args)
    except (ConnectionError, OSError, RuntimeError, ValueError) as exc:
        print(f"{args.role}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
