"""`vcard keys list|put|generate|delete` and the registry lines of `vcard status`.

Every command opens a real secure channel (SCP03 or SCP02, whichever the
card's key set is) over PC/SC, through :mod:`minidriver.gp`. Key values are
parsed here and never printed: not in output, not in error messages.

Keys on the command line end up in shell history; they are meant for test
keys. ``--keys-file``/``--auth-keys-file`` read a TOML or JSON file with
``enc``, ``mac`` and ``dek`` (hex; or one ``key`` for all three).

SCP11 keys (GPCS Amendment F) are named by ``--kid``: ``keys generate --kid 13
--kvn 2`` makes a key pair on the card and prints its public key (PEM);
``keys put --kid 13 --kvn 2 --pem sk.pem`` imports a P-256 private key (KID
11/13/15) or, for KID 10 / 20-2F, an OCE CA public key or certificate;
``keys delete --kid 13 --kvn 2`` deletes one. ``keys list`` shows them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from emulator.control.client import cli_args
from emulator.control.client.pcsc import PcscError
from emulator.profile import read_small_file
from minidriver.gp import DEFAULT_TEST_KEY, HOST_ERRORS, GPSession, factory_keys_listed, logical_channel
from minidriver.gpobjects import FACTORY_KVN, format_key_info, format_registry
from minidriver.iso7816 import SW
from minidriver.pcsc import PcscConnection
from minidriver.scp import AuthenticationError, StaticKeys

if TYPE_CHECKING:
    from emulator.control.client.api import Status, VCard

__all__ = ["KeysUsageError", "add_keys_parser", "run_keys", "status_registry_lines"]

KEY_LENS = (16, 24, 32)
MAX_KEYS_FILE = 64 * 1024  #: a key file holds three keys; anything larger is a mistake
ISSUER_KVNS = range(0x01, 0x80)
AUTH_LEVELS = (0x01, 0x03, 0x11, 0x13, 0x33)  #: PUT KEY and DELETE need C-MAC at least


class KeysUsageError(ValueError):
    """A mistake on the command line; the CLI prints it in one line and exits 2."""


def add_keys_parser(sub: Any, *, common: argparse.ArgumentParser | None = None) -> None:
    """The ``keys`` subcommand and its ``list``, ``put`` and ``delete`` children.

    ``common``: the CLI's global options, accepted after the subcommand too.
    """
    parents = [common] if common is not None else []
    auth = argparse.ArgumentParser(add_help=False, parents=parents)
    slots = " or ".join(map(str, cli_args.SLOTS))
    auth.add_argument("--slot", type=cli_args.slot, default=0, help=f"vpcd slot: {slots} (default: 0)")
    auth.add_argument("--auth-kvn", help="key set to authenticate with (default: the card's first)")
    auth.add_argument("--auth-key", help="ENC = MAC = DEK, hex (default: the GP test key 40..4F); TEST KEYS ONLY")
    auth.add_argument("--auth-enc", help="authentication ENC key, hex; TEST KEYS ONLY")
    auth.add_argument("--auth-mac", help="authentication MAC key, hex; TEST KEYS ONLY")
    auth.add_argument("--auth-dek", help="authentication DEK key, hex; TEST KEYS ONLY")
    auth.add_argument("--auth-keys-file", help="TOML/JSON file with enc, mac, dek (hex) to authenticate with")
    auth.add_argument("--level", help="security level: 01, 03, 11, 13 or 33 (default: the strongest offered)")

    keys = sub.add_parser("keys", help="list, put and delete ISD key sets over a secure channel", parents=parents)
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    ksub.add_parser("list", parents=[auth], help="key sets on the card (GET DATA E0); never key values")
    put = ksub.add_parser("put", parents=[auth], help="add a key set, or replace one (PUT KEY)")
    put.add_argument("--kvn", help="key version of the new key set, 0x01-0x7F")
    put.add_argument("--enc", help="new ENC key, hex; TEST KEYS ONLY (use --keys-file for real keys)")
    put.add_argument("--mac", help="new MAC key, hex; TEST KEYS ONLY")
    put.add_argument("--dek", help="new DEK key, hex; TEST KEYS ONLY")
    put.add_argument("--keys-file", help="TOML/JSON file with the new enc, mac, dek (hex) and optionally kvn")
    put.add_argument("--replace", help="key version to replace (default: add a new key set)")
    put.add_argument("--kid", help="SCP11 key: 11/13/15 (key pair, --pem private key) or 10, 20-2F (OCE CA key)")
    put.add_argument("--pem", help="PEM file of the SCP11 key: a P-256 private key, or a CA public key/certificate")
    gen = ksub.add_parser("generate", parents=[auth], help="generate an SCP11 key pair on the card (P-256)")
    gen.add_argument("--kid", required=True, help="11 (SCP11a), 13 (SCP11b) or 15 (SCP11c)")
    gen.add_argument("--kvn", required=True, help="key version, 0x01-0x7F")
    gen.add_argument("--replace", help="key version to replace (default: add)")
    delete = ksub.add_parser("delete", parents=[auth], help="delete a key set or an SCP11 key (DELETE key)")
    delete.add_argument("--kvn", required=True, help="key version to delete")
    delete.add_argument("--kid", help="SCP11 key identifier (10-2F) to delete with --kvn")


# -- argument parsing ------------------------------------------------------------------
def _number(option: str, text: str) -> int:
    try:
        return int(text, 0) if text.lower().startswith("0x") or text.isdigit() else int(text, 16)
    except ValueError:
        raise KeysUsageError(f"{option} must be a number such as 0x01, got {text!r}") from None


def _kvn(option: str, text: str, allowed: range) -> int:
    value = _number(option, text)
    if value not in allowed:
        raise KeysUsageError(f"{option} must be 0x{allowed.start:02X}-0x{allowed.stop - 1:02X}, got 0x{value:02X}")
    return value


def _key(option: str, text: str) -> bytes:
    """Hex key; the message never repeats the value."""
    try:
        key = bytes.fromhex(text.replace(":", "").replace(" ", ""))
    except ValueError:
        raise KeysUsageError(f"{option} must be hex digits") from None
    if len(key) not in KEY_LENS:
        raise KeysUsageError(f"{option} must be 16, 24 or 32 bytes (32, 48 or 64 hex digits), got {len(key)} bytes")
    return key


def _keys_file(option: str, path: str) -> dict[str, Any]:
    """A TOML or JSON table with ``enc``/``mac``/``dek`` or ``key``, and optionally ``kvn``."""
    file = Path(path)
    try:  # a regular file, bounded: never a FIFO that blocks or /dev/zero read forever
        raw, mode = read_small_file(file, MAX_KEYS_FILE)
    except OSError as exc:
        raise KeysUsageError(f"{option}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise KeysUsageError(f"{option}: cannot read {path}: {exc}") from None
    try:
        text = raw.decode()
        data = json.loads(text) if file.suffix == ".json" or text.lstrip().startswith("{") else tomllib.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError):
        raise KeysUsageError(f"{option}: {path} is neither TOML nor JSON") from None
    if not isinstance(data, dict):
        raise KeysUsageError(f"{option}: {path} must hold a table with enc, mac and dek")
    if mode & 0o077:
        print(f"vcard: warning: {path} is readable by other users (chmod 600 it)", file=sys.stderr)
    return data


def _key_triple(option: str, data: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    if "key" in data:
        if any(name in data for name in ("enc", "mac", "dek")):
            raise KeysUsageError(f"{option}: give either key or enc/mac/dek, not both")
        same = _key(f"{option} key", str(data["key"]))
        return same, same, same
    missing = [name for name in ("enc", "mac", "dek") if name not in data]
    if missing:
        raise KeysUsageError(f"{option}: missing {', '.join(missing)}")
    enc, mac, dek = (_key(f"{option} {name}", str(data[name])) for name in ("enc", "mac", "dek"))
    return enc, mac, dek


def auth_keys(args: argparse.Namespace) -> tuple[StaticKeys, int]:
    """The key set to open the channel with, and the KVN to ask for (0: the card's first)."""
    kvn = _kvn("--auth-kvn", args.auth_kvn, range(0x00, 0x100)) if args.auth_kvn else 0
    separate = {"enc": args.auth_enc, "mac": args.auth_mac, "dek": args.auth_dek}
    given = [name for name, value in separate.items() if value]
    sources = sum(bool(x) for x in (args.auth_key, given, args.auth_keys_file))
    if sources > 1:
        raise KeysUsageError(
            "give the authentication keys one way: --auth-key, --auth-enc/--auth-mac/--auth-dek, or --auth-keys-file"
        )
    if args.auth_keys_file:
        enc, mac, dek = _key_triple("--auth-keys-file", _keys_file("--auth-keys-file", args.auth_keys_file))
    elif given:
        if len(given) != 3:
            raise KeysUsageError("--auth-enc, --auth-mac and --auth-dek go together")
        enc, mac, dek = (_key(f"--auth-{name}", str(value)) for name, value in separate.items())
    else:
        same = _key("--auth-key", args.auth_key) if args.auth_key else DEFAULT_TEST_KEY
        enc = mac = dek = same
    return StaticKeys(kvn=kvn, enc=enc, mac=mac, dek=dek), kvn


def _level(args: argparse.Namespace) -> int | None:
    if not args.level:
        return None
    level = _number("--level", args.level if args.level.lower().startswith("0x") else f"0x{args.level}")
    if level not in AUTH_LEVELS:
        raise KeysUsageError(f"--level must be one of 01 03 11 13 33, got {args.level}")
    return level


def new_keys(args: argparse.Namespace) -> StaticKeys:
    kvn = _kvn("--kvn", args.kvn, ISSUER_KVNS) if args.kvn else None
    separate = {"enc": args.enc, "mac": args.mac, "dek": args.dek}
    given = [name for name, value in separate.items() if value]
    file_data: dict[str, Any] = {}
    if args.keys_file:
        if given:
            raise KeysUsageError("give the new keys either with --keys-file or with --enc/--mac/--dek")
        file_data = _keys_file("--keys-file", args.keys_file)
        enc, mac, dek = _key_triple("--keys-file", file_data)
    elif len(given) == 3:
        enc, mac, dek = (_key(f"--{name}", str(value)) for name, value in separate.items())
    else:
        raise KeysUsageError("the new key set needs --enc, --mac and --dek (or --keys-file)")
    if kvn is None and "kvn" in file_data:
        kvn = _kvn("--keys-file kvn", str(file_data["kvn"]), ISSUER_KVNS)
    if kvn is None:
        raise KeysUsageError("--kvn is required (0x01-0x7F)")
    return StaticKeys(kvn=kvn, enc=enc, mac=mac, dek=dek)


SCP11_SD_KIDS = (0x11, 0x13, 0x15)
SCP11_KIDS = range(0x10, 0x30)


def _scp11_kid(option: str, text: str, allowed: tuple[int, ...] | range) -> int:
    value = _number(option, text if text.lower().startswith("0x") else f"0x{text}")
    if value not in allowed:
        names = " ".join(f"{k:02X}" for k in allowed) if isinstance(allowed, tuple) else "10-2F"
        raise KeysUsageError(f"{option} must be one of {names}, got {text}")
    return value


def scp11_key(kid: int, path: str) -> ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey:
    """The P-256 key of ``--pem``: a private key for SD key pairs, a public key or certificate for CA keys."""
    file = Path(path)
    try:
        raw, mode = read_small_file(file, MAX_KEYS_FILE)
    except (OSError, ValueError) as exc:
        raise KeysUsageError(f"--pem: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    key: object
    try:
        if kid in SCP11_SD_KIDS:
            key = serialization.load_pem_private_key(raw, None)
        elif b"CERTIFICATE" in raw:
            key = x509.load_pem_x509_certificate(raw).public_key()
        else:
            key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError):
        kind = "an unencrypted PEM private key" if kid in SCP11_SD_KIDS else "a PEM public key or certificate"
        raise KeysUsageError(f"--pem: {path} is not {kind}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise KeysUsageError(f"--pem: {path} must hold a P-256 (secp256r1) key")
    if isinstance(key, ec.EllipticCurvePrivateKey) and mode & 0o077:
        print(f"vcard: warning: {path} is readable by other users (chmod 600 it)", file=sys.stderr)
    return key


def _scp11_args(args: argparse.Namespace, command: str) -> tuple[int, int, int] | None:
    """``(kid, kvn, replace)`` when the command is about an SCP11 key, else None."""
    kid_text = getattr(args, "kid", None)
    if not kid_text:
        return None
    allowed: tuple[int, ...] | range = SCP11_SD_KIDS if command == "generate" else SCP11_KIDS
    kid = _scp11_kid("--kid", kid_text, allowed)
    if not args.kvn:
        raise KeysUsageError("--kvn is required with --kid (0x01-0x7F)")
    kvn = _kvn("--kvn", args.kvn, ISSUER_KVNS)
    replace = _kvn("--replace", args.replace, ISSUER_KVNS) if getattr(args, "replace", None) else 0
    if command == "put":
        if any((args.enc, args.mac, args.dek, args.keys_file)):
            raise KeysUsageError("--kid puts one SCP11 key from --pem; --enc/--mac/--dek/--keys-file are for key sets")
        if not args.pem:
            raise KeysUsageError("--kid needs --pem (the SCP11 key's PEM file)")
    return kid, kvn, replace


def _run_scp11(session: GPSession, command: str, scp11: tuple[int, int, int], key: Any, slot: int, how: str) -> None:
    kid, kvn, replace = scp11
    if command == "generate":
        public = session.generate_ec_key(kid, kvn, replace_kvn=replace)
        print(f"slot {slot}: generated SCP11 key 0x{kid:02X}/0x{kvn:02X} ({how}); public key:")
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        print(pem.decode().rstrip())
    elif command == "put":
        session.put_ec_key(kid, kvn, key, replace_kvn=replace)
        print(f"slot {slot}: put SCP11 key 0x{kid:02X}/0x{kvn:02X} ({how})")
    else:
        session.delete_scp11_keys(kid=kid, kvn=kvn)
        print(f"slot {slot}: deleted SCP11 key 0x{kid:02X}/0x{kvn:02X} ({how})")


# -- commands --------------------------------------------------------------------------
NEEDS_KEYS = "registry: needs issuer keys (vcard keys list --auth-key ...)"


def _open(transport: Any, args: argparse.Namespace, channel: int) -> GPSession:
    keys, kvn = auth_keys(args)
    try:
        return GPSession.open(transport, keys, kvn=kvn, level=_level(args), channel=channel)
    except AuthenticationError as exc:
        raise PcscError(f"{exc}; give the issuer keys with --auth-key or --auth-keys-file") from None


def _connect(reader: str) -> PcscConnection:
    """A shared connection to the card in ``reader``, left as it is on close; a failure is one line."""
    try:
        return PcscConnection(reader)
    except HOST_ERRORS as exc:
        raise PcscError(
            f"cannot connect to the card in {reader!r}: {exc} (is a card inserted? try: vcard status)"
        ) from None


def run_keys(vc: VCard, args: argparse.Namespace) -> int:
    """``vcard keys ...``: validate everything before touching the card, then one session."""
    slot: int = args.slot  # checked by cli_args.slot while parsing
    auth_keys(args)
    _level(args)
    command = args.keys_command
    scp11 = _scp11_args(args, command) if command in ("put", "generate", "delete") else None
    scp11_material = scp11_key(scp11[0], args.pem) if scp11 is not None and command == "put" else None
    if command == "generate" and scp11 is None:  # pragma: no cover - argparse requires --kid
        raise KeysUsageError("generate needs --kid and --kvn")
    put_keys = new_keys(args) if command == "put" and scp11 is None else None
    replace = _kvn("--replace", args.replace, ISSUER_KVNS) if command == "put" and args.replace else 0
    delete_kvn = _kvn("--kvn", args.kvn, range(0x01, 0x100)) if command == "delete" else 0
    reader = vc.reader_name(slot)
    with _connect(reader) as connection:
        try:
            with logical_channel(connection) as channel:
                session = _open(connection, args, channel)
                try:
                    how = f"SCP{session.scp:02X} level {session.level:02X}, key set 0x{session.kvn:02X}"
                    if scp11 is not None:
                        _run_scp11(session, command, scp11, scp11_material, slot, how)
                    elif put_keys is not None:
                        session.put_key(put_keys, replace_kvn=replace)
                        done = f"replaced key set 0x{replace:02X} with" if replace else "added"
                        print(f"slot {slot}: {done} key set 0x{put_keys.kvn:02X} ({how})")
                    elif command == "delete":
                        session.delete_key(delete_kvn)
                        print(f"slot {slot}: deleted key set 0x{delete_kvn:02X} ({how})")
                    else:
                        print(f"slot {slot}: {reader} ({how})")
                    for line in format_key_info(
                        session.key_information(), factory_hint="replace it with vcard keys put"
                    ):
                        print(f"  {line}")
                finally:
                    session.close()
        except (*HOST_ERRORS, ValueError) as exc:  # the card refused, or cannot do what was asked
            raise PcscError(str(exc)) from None
    return 0


def status_registry_lines(status: Status) -> list[str]:
    """For ``vcard status``: GET STATUS of each present card, when the factory test keys still open it."""
    out: list[str] = []
    for s in status.slots:
        if not s.present or not s.reader or not s.vpcd_connected:
            continue
        out += [f"slot {s.slot} {line}" for line in _registry_lines(s.reader)]
    return out


def _registry_lines(reader: str, *, prefix: str = "registry: ") -> list[str]:
    """GET STATUS over a secure channel with the factory test key set, if the card still lists it.

    Once the issuer has put its own keys this says :data:`NEEDS_KEYS`. Works on a
    logical channel so other applications' basic channel is undisturbed. Never
    raises for a card that is absent, busy or refuses; says so in one line.
    """
    try:
        with _connect(reader) as connection, logical_channel(connection) as channel:
            if not factory_keys_listed(connection, channel, kvn=FACTORY_KVN):
                return [NEEDS_KEYS]
            keys = StaticKeys.same(DEFAULT_TEST_KEY, kvn=FACTORY_KVN)
            try:
                session = GPSession.open(connection, keys, kvn=FACTORY_KVN, channel=channel)
            except AuthenticationError:
                return [NEEDS_KEYS]
            except HOST_ERRORS as exc:
                if getattr(exc, "sw", None) in (SW.AUTHENTICATION_FAILED, SW.REFERENCED_DATA_NOT_FOUND):
                    return [NEEDS_KEYS]
                raise
            try:
                return [prefix + line for line in format_registry(session.registry())]
            finally:
                session.close()
    except (PcscError, *HOST_ERRORS) as exc:
        return [f"{prefix}unavailable: {exc}"]
