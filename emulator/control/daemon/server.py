"""The vcard daemon: every vpcd slot of one pcscd, and the control socket.

Started by ``vcard up`` (detached), it enters pcscd's network namespace,
connects one :class:`SlotServer` per vpcd slot and serves control requests
(insert, remove, status, shutdown, trace, faults) on a Unix socket with mode
0600. Messages are typed (:mod:`.messages`); one request per connection,
except ``subscribe``, which streams trace events on its connection until the
client closes it. Each subscriber has a bounded queue: one that falls behind
is dropped with a note, so a slow reader never blocks a card.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator.card import VirtualCard
from emulator.control import messages as m
from emulator.control.protocol import ProtocolError, recv_message, send_message
from emulator.control.stack.netns import enter_net_namespace, same_net_namespace
from emulator.control.stack.paths import RuntimePaths
from emulator.factory import open_card
from emulator.faults import Fault, FaultKind, FaultSpec, TearWhen
from emulator.logutil import TRAFFIC
from emulator.profile import Profile, ProfileError, load_profile
from emulator.slot import Slot
from emulator.store import Store
from emulator.trace import EventHub, NoteEvent, Subscription, TraceEvent
from emulator.transport.server import SlotServer

__all__ = ["VPCD_BASE_PORT", "VPCD_SLOTS", "Daemon", "main"]

log = logging.getLogger("emulator.daemon")

VPCD_BASE_PORT = 0x8C7B  #: CHANNELID of Debian's reader.conf.d/vpcd: slot n uses port + n
VPCD_SLOTS = 2  #: vpcd's compile-time slot count
#: a subscriber that cannot take a line for this long is dropped
SEND_TIMEOUT_SECONDS = 5.0
#: events encoded per send: small, so the GIL is back with the card within a fraction of an APDU
STREAM_BATCH = 16
#: how often a subscription looks for new events (they are sent in batches, off the card's path)
STREAM_POLL_SECONDS = 0.02


class RequestError(Exception):
    """A control request that cannot be done; the message is for the user."""


class Daemon:
    def __init__(
        self, paths: RuntimePaths, *, host: str, port: int, slots: int, state_dir: Path | None, settle: bool = True
    ) -> None:
        self.paths = paths
        self.state_dir = state_dir
        self.events = EventHub()
        self.events.on_drop = self._dropped
        self.slots = [Slot(n, events=self.events) for n in range(slots)]
        self.servers = [SlotServer(s, host, port + s.number, name=f"slot{s.number}", settle=settle) for s in self.slots]
        for slot, server in zip(self.slots, self.servers, strict=True):
            slot.drop_link = server.disconnect  # a tear or a mute's end closes the link at once
        self.stores: dict[int, Store] = {}
        self.started = time.time()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._ops: dict[type[Any], Callable[[Any], Any]] = {
            m.Ping: self._ping,
            m.Status: self._status,
            m.Insert: self._insert,
            m.Remove: self._remove,
            m.Renew: self._renew,
            m.Shutdown: self._shutdown,
            m.Trace: self._trace,
            m.FaultAdd: self._fault_add,
            m.FaultList: self._fault_list,
            m.FaultClear: self._fault_clear,
        }
        self._peer_uid: int | None = None  #: of the connection being served (for reveal logs)

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
        # wake the accept loop now instead of at its next 0.5 s timeout: shutting a listening
        # socket down makes a blocked accept() fail at once (Linux), and the loop sees _stop
        listener = self._listener
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)

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
            slot.interrupt()
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
            uid = _peer_uid(conn)
            while True:
                try:
                    raw = recv_message(conn, buf)
                except (ProtocolError, OSError) as exc:
                    log.warning("control: bad request: %s", exc)
                    return
                if raw is None:
                    return
                try:
                    request = m.decode_request(raw)
                except m.MessageError as exc:
                    reply = m.encode_error(str(exc))
                else:
                    if isinstance(request, m.Subscribe):
                        self._stream(conn, request, uid)
                        return
                    reply = self._handle(request, uid)
                try:
                    send_message(conn, reply)
                except OSError:
                    return

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request as a JSON object, its reply as one (``subscribe`` needs a connection)."""
        try:
            typed = m.decode_request(request)
        except m.MessageError as exc:
            return m.encode_error(str(exc))
        if isinstance(typed, m.Subscribe):
            return m.encode_error("subscribe needs its own connection")
        return self._handle(typed, os.getuid())

    def _handle(self, request: m.Request, uid: int | None) -> dict[str, Any]:
        op = self._ops[type(request)]
        self._peer_uid = uid
        try:
            return m.encode(op(request))
        except RequestError as exc:
            return m.encode_error(str(exc))
        except Exception as exc:  # a bug: keep serving, tell the client
            log.exception("control: %s failed", type(request).op)
            return m.encode_error(f"internal error ({type(exc).__name__}); see the daemon log")

    def _slot(self, number: int) -> Slot:
        if not 0 <= number < len(self.slots):
            raise RequestError(
                f"--slot must be 0-{len(self.slots) - 1} (vpcd has {len(self.slots)} slots), got {number}"
            )
        return self.slots[number]

    def _ping(self, request: m.Ping) -> m.PingReply:
        return m.PingReply(os.getpid())

    def _status(self, request: m.Status) -> m.StatusReply:
        slots = []
        for slot, server in zip(self.slots, self.servers, strict=True):
            info = slot.info()
            slots.append(
                m.SlotState(
                    slot=info.number,
                    present=info.present,
                    profile=info.profile,
                    state_file=info.state_file,
                    vpcd_connected=server.connected.is_set(),
                    vpcd_port=server.port,
                )
            )
        return m.StatusReply(os.getpid(), round(time.time() - self.started, 1), tuple(slots))

    def _insert(self, request: m.Insert) -> m.InsertReply:
        slot = self._slot(request.slot)
        if slot.card is not None:
            raise RequestError(f"slot {slot.number} already holds a card; run: vcard remove --slot {slot.number}")
        profile = self._profile_for(request.profile, request.state_dir)
        set_aside = None
        if request.fresh and profile.state_file.exists():
            set_aside = _set_aside(profile.state_file)
        card, store = self._open(profile)
        self.stores[slot.number] = store
        slot.insert(
            card, profile=profile.name, state_file=str(profile.state_file), on_remove=self._closer(slot.number, store)
        )
        self.servers[slot.number].connect()
        return m.InsertReply(slot.number, profile.name, str(profile.state_file), set_aside)

    def _profile_for(self, name: str | None, state_dir_asked: str | None) -> Profile:
        """The profile a request names, its state file under the request's state directory (``vcard
        --state-dir D insert`` is honoured, issue 8), and no other slot's card already."""
        state_dir = self.state_dir
        if state_dir_asked is not None:
            if not os.path.isabs(state_dir_asked):
                raise RequestError("state_dir must be an absolute path")
            state_dir = Path(state_dir_asked)
        try:
            profile = load_profile(name, state_dir=state_dir)
        except ProfileError as exc:
            raise RequestError(str(exc)) from None
        for other in self.slots:
            if other.state_file == str(profile.state_file):
                raise RequestError(f"{profile.state_file} is already the card in slot {other.number}")
        return profile

    @staticmethod
    def _open(profile: Profile) -> tuple[VirtualCard, Store]:
        try:
            return open_card(profile)  # a foreign/damaged file is refused; a new card is all or nothing
        except (OSError, ValueError) as exc:
            raise RequestError(f"cannot create the card from {profile.source}: {exc}") from None

    def _closer(self, number: int, store: Store) -> Callable[[], None]:
        """The slot's on_remove: close this card's store (not a later card's, after a renew)."""

        def on_remove() -> None:
            if self.stores.get(number) is store:
                self.stores.pop(number).close()

        return on_remove

    def _remove(self, request: m.Remove) -> m.RemoveReply:
        """Pull the card. Gentle by default: the APDUs sent before pcscd's next
        presence poll are answered and the link ends at that poll, so no client
        gets the empty "success" vpcd makes of a dropped link (transport/server.py).
        ``tear``: close the link now, under an APDU in flight if there is one."""
        slot = self._slot(request.slot)
        if slot.card is None:
            raise RequestError(f"slot {slot.number} is already empty")
        server = self.servers[slot.number]
        slot.interrupt()  # a card held mute or slow by a fault goes now
        gentle = False
        if request.tear:
            server.disconnect()
        else:
            gentle = server.leave()
        if not slot.remove(kind="remove" if gentle else "tear"):
            return m.RemoveReply(slot.number, True)  # a fault pulled it meanwhile (an interrupted mute)
        return m.RemoveReply(slot.number, not gentle)

    def _renew(self, request: m.Renew) -> m.RenewReply:
        """A new card in place of the slot's card, the vpcd link kept (Slot.replace): no removal
        for pcscd to see, so no presence poll to wait for; the host resets the card to see it."""
        slot = self._slot(request.slot)
        if slot.card is None:
            raise RequestError(f"slot {slot.number} is empty; insert a card instead")
        profile = self._profile_for(request.profile, request.state_dir)
        card, store = self._open(profile)
        try:
            slot.replace(
                card, profile=profile.name, state_file=str(profile.state_file), on_remove=self._closer(slot.number, store)
            )
        except ValueError as exc:  # pulled meanwhile
            store.close()
            raise RequestError(str(exc)) from None
        self.stores[slot.number] = store  # the old card's on_remove closed its store
        return m.RenewReply(slot.number, profile.name, str(profile.state_file))

    def _shutdown(self, request: m.Shutdown) -> m.ShutdownReply:
        self.stop()
        return m.ShutdownReply(os.getpid())

    # -- traces -------------------------------------------------------------------
    def _reveal(self, reveal: bool, uid: int | None, what: str) -> None:
        if reveal:  # a reveal is itself logged, with who asked
            log.warning("control: uid %s asked for %s with secrets revealed", "unknown" if uid is None else uid, what)

    def _trace(self, request: m.Trace) -> m.TraceReply:
        if request.slot is not None:
            self._slot(request.slot)
        if request.last is not None and request.last < 0:
            raise RequestError(f"--last must be 0 or more, got {request.last}")
        self._reveal(request.reveal, self._peer_uid, "the trace")
        events = self.events.recent(request.slot, last=request.last, after=request.after)
        shown = tuple(e if request.reveal else e.redacted() for e in events)
        return m.TraceReply(shown, self.events.last_seq, request.reveal)

    def _stream(self, conn: socket.socket, request: m.Subscribe, uid: int | None) -> None:
        """Serve one subscription until the client closes it or is dropped."""
        if (request.slot is not None and not 0 <= request.slot < len(self.slots)) or request.last < 0:
            send_message(conn, m.encode_error(f"subscribe: slot must be 0-{len(self.slots) - 1} and last 0 or more"))
            return
        self._reveal(request.reveal, uid, "a trace stream")
        sub, backlog = self.events.subscribe(request.slot, last=request.last)
        conn.settimeout(SEND_TIMEOUT_SECONDS)
        try:
            send_message(conn, m.encode(m.SubscribeReply(request.slot, request.reveal)))
            self._send_events(conn, backlog, request.reveal)
            while not self._stop.is_set():
                batch = sub.drain(STREAM_BATCH)
                if batch:
                    self._send_events(conn, batch, request.reveal)
                    continue
                if sub.dropped.is_set():
                    note = NoteEvent(-1 if request.slot is None else request.slot, "dropped: fell behind")
                    self._send_events(conn, [note], False)
                    return
                if _peer_closed(conn):
                    return
                time.sleep(STREAM_POLL_SECONDS)
        except TimeoutError:  # the socket stayed full: it stopped reading
            log.warning("control: a trace subscriber read nothing for %.0f s and was dropped", SEND_TIMEOUT_SECONDS)
        except OSError:
            return  # the client left
        finally:
            self.events.unsubscribe(sub)

    @staticmethod
    def _send_events(conn: socket.socket, events: list[TraceEvent], reveal: bool) -> None:
        if not events:
            return
        lines = (json.dumps(m.encode_event(e if reveal else e.redacted())) for e in events)  # field order is fixed
        conn.sendall(("\n".join(lines) + "\n").encode())

    def _dropped(self, sub: Subscription) -> None:
        log.warning("control: a trace subscriber fell %d events behind and was dropped", sub.maxsize)

    # -- faults --------------------------------------------------------------------
    def _fault_add(self, request: m.FaultAdd) -> m.FaultAddReply:
        slot = self._slot(request.slot)
        try:
            kind = FaultKind(request.kind)
            when = TearWhen(request.when)
            atr = bytes.fromhex(request.atr) if request.atr is not None else None
            fields: dict[str, Any] = {
                "ins": request.ins, "cla": request.cla, "p1": request.p1, "applet": request.applet,
                "count": request.count, "skip": request.skip, "sw": request.sw,
                "delay_ms": request.delay_ms, "atr": atr, "when": when,
            }  # fmt: skip
            spec = FaultSpec.mute(**fields) if kind is FaultKind.MUTE else FaultSpec(kind, **fields)
        except ValueError as exc:
            raise RequestError(f"fault {request.kind}: {exc}") from None
        fault = slot.faults.add(spec)
        log.info("slot %d: fault %s added: %s", slot.number, fault.id, spec.describe())
        return m.FaultAddReply(_fault_info(slot.number, fault))

    def _fault_list(self, request: m.FaultList) -> m.FaultListReply:
        slots = self.slots if request.slot is None else [self._slot(request.slot)]
        return m.FaultListReply(tuple(_fault_info(s.number, f) for s in slots for f in s.faults.list()))

    def _fault_clear(self, request: m.FaultClear) -> m.FaultClearReply:
        slots = self.slots if request.slot is None else [self._slot(request.slot)]
        cleared = sum(s.faults.clear(request.id) for s in slots)
        if request.id is not None and not cleared:
            raise RequestError(f"no fault {request.id} (see: vcard fault list)")
        return m.FaultClearReply(cleared)


def _fault_info(slot: int, fault: Fault) -> m.FaultInfo:
    count = fault.spec.count
    return m.FaultInfo(
        fault.id, slot, fault.spec.kind.value, fault.spec.describe(), fault.fired,
        None if count is None else count - fault.fired,
    )  # fmt: skip


def _peer_uid(conn: socket.socket) -> int | None:
    """The uid of the process at the other end (SO_PEERCRED: pid, uid, gid)."""
    try:
        _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except OSError:
        return None
    return int(uid)


def _peer_closed(conn: socket.socket) -> bool:
    """The subscriber hung up (EOF) or sent something: a subscriber sends nothing after subscribing."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


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
        reply = daemon.handle(m.encode(m.Insert(slot=0, profile=args.insert)))
        if not reply["ok"]:
            log.error("cannot insert the card: %s", reply["error"])
            return 1
    daemon.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
