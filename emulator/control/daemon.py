"""The vcard daemon: every vpcd slot of one pcscd, and the control socket.

Started by ``vcard up`` (detached), it enters pcscd's network namespace,
connects one :class:`SlotServer` per vpcd slot and serves control requests
(insert, remove, status, shutdown) on a Unix socket with mode 0600.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

from ..factory import open_card
from ..logutil import TRAFFIC
from ..profile import ProfileError, load_profile
from ..slot import Slot
from ..store import Store
from ..transport.server import SlotServer
from .netns import enter_net_namespace, same_net_namespace
from .paths import RuntimePaths
from .protocol import ProtocolError, recv_message, send_message

__all__ = ["VPCD_BASE_PORT", "VPCD_SLOTS", "Daemon", "main"]

log = logging.getLogger("emulator.daemon")

VPCD_BASE_PORT = 0x8C7B  #: CHANNELID of Debian's reader.conf.d/vpcd: slot n uses port + n
VPCD_SLOTS = 2  #: vpcd's compile-time slot count


class RequestError(Exception):
    """A control request that cannot be done; the message is for the user."""


class Daemon:
    def __init__(
        self, paths: RuntimePaths, *, host: str, port: int, slots: int, state_dir: Path | None, settle: bool = True
    ) -> None:
        self.paths = paths
        self.state_dir = state_dir
        self.slots = [Slot(n) for n in range(slots)]
        self.servers = [
            SlotServer(s, host, port + s.number, name=f"slot{s.number}", settle=settle) for s in self.slots
        ]
        self.stores: dict[int, Store] = {}
        self.started = time.time()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._ops = {
            "ping": self._ping,
            "status": self._status,
            "insert": self._insert,
            "remove": self._remove,
            "shutdown": self._shutdown,
        }

    # -- life cycle -------------------------------------------------------------
    def serve_forever(self) -> None:
        self._listen()
        for server in self.servers:
            server.start()
        log.info(
            "daemon %d ready: %d slots, control socket %s", os.getpid(), len(self.slots), self.paths.control_socket
        )
        assert self._listener is not None
        self._listener.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                threading.Thread(target=self._client, args=(conn,), daemon=True).start()
        finally:
            self._cleanup()

    def stop(self) -> None:
        self._stop.set()

    def _listen(self) -> None:
        path = self.paths.control_socket
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists():
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: no window with wider access
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        sock.listen(16)
        self._listener = sock
        self.paths.daemon_pid.write_text(f"{os.getpid()}\n")

    def _cleanup(self) -> None:
        # SIGTERM/shutdown is a gentle removal of every card (issue 8): the APDUs in
        # flight are answered and pcscd sees each card go at its presence poll.
        leaving = [server for slot, server in zip(self.slots, self.servers, strict=True) if slot.card is not None]
        for server in leaving:
            server.request_leave()
        for server in leaving:
            server.wait_left()
        for slot in self.slots:
            slot.remove()
        for server in self.servers:
            server.stop()
        for store in self.stores.values():
            store.close()
        if self._listener is not None:
            self._listener.close()
        for path in (self.paths.control_socket, self.paths.daemon_pid):
            try:
                if path == self.paths.daemon_pid and path.read_text().strip() != str(os.getpid()):
                    continue
                path.unlink()
            except OSError:
                pass
        log.info("daemon %d stopped", os.getpid())

    # -- requests -----------------------------------------------------------------
    def _client(self, conn: socket.socket) -> None:
        buf = bytearray()
        with conn:
            while True:
                try:
                    request = recv_message(conn, buf)
                except (ProtocolError, OSError) as exc:
                    log.warning("control: bad request: %s", exc)
                    return
                if request is None:
                    return
                reply = self.handle(request)
                try:
                    send_message(conn, reply)
                except OSError:
                    return

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = self._ops.get(str(request.get("op")))
        if op is None:
            return {"ok": False, "error": f"unknown operation {request.get('op')!r}"}
        try:
            result = op(request)
        except RequestError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug: keep serving, tell the client
            log.exception("control: %s failed", request.get("op"))
            return {"ok": False, "error": f"internal error ({type(exc).__name__}); see the daemon log"}
        return {"ok": True, **result}

    def _slot(self, request: dict[str, Any]) -> Slot:
        number = request.get("slot", 0)
        if not isinstance(number, int) or not 0 <= number < len(self.slots):
            raise RequestError(
                f"--slot must be 0-{len(self.slots) - 1} (vpcd has {len(self.slots)} slots), got {number}"
            )
        return self.slots[number]

    def _ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid()}

    def _status(self, request: dict[str, Any]) -> dict[str, Any]:
        slots = []
        for slot, server in zip(self.slots, self.servers, strict=True):
            info = slot.info()
            slots.append(
                {
                    "slot": info.number,
                    "present": info.present,
                    "profile": info.profile,
                    "state_file": info.state_file,
                    "vpcd_connected": server.connected.is_set(),
                    "vpcd_port": server.port,
                }
            )
        return {"pid": os.getpid(), "uptime": round(time.time() - self.started, 1), "slots": slots}

    def _insert(self, request: dict[str, Any]) -> dict[str, Any]:
        slot = self._slot(request)
        if slot.card is not None:
            raise RequestError(f"slot {slot.number} already holds a card; run: vcard remove --slot {slot.number}")
        state_dir = self.state_dir  # `vcard --state-dir D insert` names its own: honoured (issue 8)
        if request.get("state_dir") is not None:
            if not isinstance(request["state_dir"], str) or not os.path.isabs(request["state_dir"]):
                raise RequestError("state_dir must be an absolute path")
            state_dir = Path(request["state_dir"])
        try:
            profile = load_profile(request.get("profile"), state_dir=state_dir)
        except ProfileError as exc:
            raise RequestError(str(exc)) from None
        for other in self.slots:
            if other.state_file == str(profile.state_file):
                raise RequestError(f"{profile.state_file} is already the card in slot {other.number}")
        set_aside = None
        if request.get("fresh") and profile.state_file.exists():
            set_aside = _set_aside(profile.state_file)
        try:
            card, store = open_card(profile)  # a foreign/damaged file is refused; a new card is all or nothing
        except (OSError, ValueError) as exc:
            raise RequestError(f"cannot create the card from {profile.source}: {exc}") from None
        self.stores[slot.number] = store

        def on_remove(number: int = slot.number) -> None:
            old = self.stores.pop(number, None)
            if old is not None:
                old.close()

        slot.insert(card, profile=profile.name, state_file=str(profile.state_file), on_remove=on_remove)
        self.servers[slot.number].connect()
        return {
            "slot": slot.number,
            "profile": profile.name,
            "state_file": str(profile.state_file),
            "set_aside": set_aside,
        }

    def _remove(self, request: dict[str, Any]) -> dict[str, Any]:
        """Pull the card. Gentle by default: the APDUs sent before pcscd's next
        presence poll are answered and the link ends at that poll, so no client
        gets the empty "success" vpcd makes of a dropped link (transport/server.py).
        ``tear``: close the link now, under an APDU in flight if there is one."""
        slot = self._slot(request)
        tear = request.get("tear", False)
        if not isinstance(tear, bool):
            raise RequestError(f"tear must be true or false, got {tear!r}")
        if slot.card is None:
            raise RequestError(f"slot {slot.number} is already empty")
        server = self.servers[slot.number]
        gentle = False
        if tear:
            server.disconnect()
        else:
            gentle = server.leave()
        if not slot.remove():
            raise RequestError(f"slot {slot.number} is already empty")
        return {"slot": slot.number, "torn": not gentle}

    def _shutdown(self, request: dict[str, Any]) -> dict[str, Any]:
        self.stop()
        return {"pid": os.getpid()}


def _set_aside(path: Path) -> str:
    """Move a card's state (and its WAL files) to ``<name>.<timestamp>.old``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{stamp}.old")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.{stamp}-{n}.old")
        n += 1
    shutil.move(str(path), str(target))
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            shutil.move(str(extra), str(target) + suffix)
    return str(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vcard-daemon", description="Serve virtual cards to vpcd (started by `vcard up`)."
    )
    parser.add_argument("--runtime-dir", type=Path, default=None)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=VPCD_BASE_PORT)
    parser.add_argument("--slots", type=int, default=VPCD_SLOTS)
    parser.add_argument("--netns-pid", type=int, default=None, help="enter this process's network namespace first")
    parser.add_argument("--insert", default=None, metavar="PROFILE", help="insert a card with this profile in slot 0")
    parser.add_argument(
        "--fresh-pcscd", action="store_true", help="pcscd was just started: no card was ever seen, no need to settle"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--trace", action="store_true", help="log APDUs (secrets redacted)")
    args = parser.parse_args(argv)
    level = TRAFFIC if args.trace else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.netns_pid and not same_net_namespace(args.netns_pid):
        enter_net_namespace(args.netns_pid)  # before any thread exists
    paths = RuntimePaths(args.runtime_dir) if args.runtime_dir else RuntimePaths.default()
    daemon = Daemon(
        paths, host=args.host, port=args.port, slots=args.slots, state_dir=args.state_dir, settle=not args.fresh_pcscd
    )
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    if args.insert:
        reply = daemon.handle({"op": "insert", "slot": 0, "profile": args.insert})
        if not reply["ok"]:
            log.error("cannot insert the card: %s", reply["error"])
            return 1
    daemon.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
