"""The Python API: the same operations as the CLI, typed.

>>> vc = VCard()                      # the stack `vcard up` started
>>> vc.remove(wait=True)              # every PC/SC application sees the card go
>>> vc.insert(wait=True)              # ... and come back
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.control import messages
from emulator.control.client import pcsc
from emulator.control.client.client import ControlClient, DaemonNotRunning, EventStream, RequestFailed
from emulator.control.messages import FaultInfo
from emulator.control.stack.paths import SYSTEM_PCSCD_SOCKET, RuntimePaths, pcscd_client_env
from emulator.control.stack.pcscd import (
    StackError,
    StackInfo,
    find_system_pcscd,
    start_daemon,
    start_pcscd,
    stop_daemon,
    stop_pcscd,
)
from emulator.faults import FaultKind, TearWhen
from emulator.profile import Profile, ProfileError, load_profile
from emulator.trace import CardEvent, TraceEvent

__all__ = ["DaemonNotRunning", "FaultInfo", "ProfileError", "SlotStatus", "StackError", "Status", "VCard"]

DEFAULT_WAIT = 5.0


#: told each long step as it starts (``vcard up``/``insert`` print them on a terminal)
Progress = Callable[[str], None]


def _tell(progress: Progress | None, step: str) -> None:
    if progress is not None:
        progress(step)


def _check_timeout(timeout: float) -> None:
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite number of seconds above 0, got {timeout!r}")


@dataclass(frozen=True)
class SlotStatus:
    slot: int
    present: bool
    profile: str | None
    state_file: str | None
    vpcd_connected: bool
    reader: str | None = None


@dataclass(frozen=True)
class Status:
    daemon_pid: int | None
    stack: StackInfo | None
    slots: list[SlotStatus] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.daemon_pid is not None


class VCard:
    """Control of one vcard stack (pcscd + daemon), found by its runtime directory."""

    def __init__(self, runtime_dir: Path | str | None = None, *, state_dir: Path | str | None = None) -> None:
        self.paths = RuntimePaths(Path(runtime_dir)) if runtime_dir else RuntimePaths.default()
        self.state_dir = Path(state_dir) if state_dir else None
        self.client = ControlClient(self.paths)
        info = StackInfo.load(self.paths)
        if info is not None:
            pcsc.use_socket(info.pcscd_socket)

    # -- stack ------------------------------------------------------------------
    @property
    def stack(self) -> StackInfo | None:
        return StackInfo.load(self.paths)

    @property
    def env(self) -> dict[str, str]:
        """Environment for PC/SC programs run against this stack (subprocesses)."""
        info = self.stack
        return {**os.environ, **pcscd_client_env(info.pcscd_socket if info else None)}

    def up(
        self,
        *,
        profile: str | None = None,
        private: bool = False,
        listen_any: bool = False,
        insert: bool = True,
        wait: bool = True,
        verbose: bool = False,
        trace: bool = False,
        user: bool = False,
        progress: Progress | None = None,
    ) -> Status:
        """Start what is not running: pcscd, the daemon, a card in slot 0.

        ``progress`` is told each long step as it starts (the CLI prints them).

        ``user``: no root needed; pcscd runs in a user + network + mount
        namespace of this user's, its socket in the runtime directory
        (userns.py). Implies ``private``.

        ``profile`` is validated before anything starts. On a stack that
        already runs, slot 0 gets a card from ``profile`` if it is empty; if
        it holds a card from another profile, or ``private`` is asked of a
        stack on the system socket, :class:`StackError` says what to do.
        """
        wanted = self._check_profile(profile)
        info = StackInfo.load(self.paths)
        fresh = False
        if info is not None and info.alive and (private or user) and not pcscd_client_env(info.pcscd_socket):
            flag = "--user" if user else "--private"
            raise StackError(
                f"a vcard stack already runs on the system pcscd socket {info.pcscd_socket}; "
                f"{flag} was not applied (to get a private one: vcard down, then vcard up {flag})"
            )
        if info is None or not info.alive:
            system = None if private or user else find_system_pcscd()
            if system is not None:
                info = StackInfo("external", system, str(SYSTEM_PCSCD_SOCKET), owned=False)
                info.save(self.paths)
            else:
                stop_daemon(self.paths)  # a daemon bound to a dead pcscd's namespace is useless
                _tell(progress, "starting pcscd" + (" (own socket and namespaces)" if private or user else ""))
                info = start_pcscd(self.paths, private=private, listen_any=listen_any, user=user)
                fresh = True
        pcsc.use_socket(info.pcscd_socket)
        if not self._daemon_alive():
            _tell(progress, "starting the daemon and connecting to vpcd")
            start_daemon(self.paths, info, state_dir=self.state_dir, verbose=verbose, trace=trace, fresh_pcscd=fresh)
        if insert:
            slot0 = self.client.request("status")["slots"][0]
            if not slot0["present"]:
                self.insert(0, profile=profile, wait=wait, progress=progress)
            elif wanted is not None and slot0["profile"] != wanted.name:
                raise StackError(
                    f"the stack already runs and slot 0 holds a card from profile {slot0['profile']} "
                    f"(state {slot0['state_file']}); --profile {profile} was not used. To use it: "
                    f"vcard remove --slot 0, then vcard insert --slot 0 --profile {profile} (or --slot 1)"
                )
        return self.status()

    def _check_profile(self, profile: str | None) -> Profile | None:
        """Load and validate ``profile`` here, before the daemon is asked (raises ProfileError)."""
        if profile is None:
            return None
        return load_profile(profile, state_dir=self.state_dir)

    def down(self) -> bool:
        """Stop the daemon and the pcscd vcard started; True if anything was running."""
        stopped = stop_daemon(self.paths)
        info = StackInfo.load(self.paths)
        if info is not None:
            stop_pcscd(info)
            stopped = stopped or info.owned
            self.paths.stack_file.unlink(missing_ok=True)
        return stopped

    def _daemon_alive(self) -> bool:
        try:
            self.client.request("ping")
        except (DaemonNotRunning, RequestFailed, OSError):
            return False
        return True

    # -- cards ----------------------------------------------------------------------
    def status(self) -> Status:
        info = StackInfo.load(self.paths)
        try:
            reply = self.client.request("status")
        except (DaemonNotRunning, OSError):
            return Status(None, info)
        readers: list[str] = []
        if info is not None and info.alive:
            try:
                readers = pcsc.list_readers()
            except pcsc.PcscError:
                readers = []
        slots = [
            SlotStatus(
                slot=s["slot"],
                present=s["present"],
                profile=s["profile"],
                state_file=s["state_file"],
                vpcd_connected=s["vpcd_connected"],
                reader=pcsc.reader_for_slot(s["slot"], readers),
            )
            for s in reply["slots"]
        ]
        return Status(reply["pid"], info, slots)

    def reader_name(self, slot: int = 0) -> str:
        name = pcsc.reader_for_slot(slot)
        if name is None:
            raise StackError(
                f"pcscd shows no vpcd reader for slot {slot}; is vsmartcard-vpcd installed? (try: vcard doctor)"
            )
        return name

    def insert(
        self,
        slot: int = 0,
        *,
        profile: str | None = None,
        fresh: bool = False,
        wait: bool = False,
        timeout: float = DEFAULT_WAIT,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Insert a card from ``profile``; its state file is under this VCard's ``state_dir`` if given.

        The profile is validated here first (:class:`ProfileError`), so a bad
        one is refused before the daemon writes anything. A ``state_dir``
        given to this VCard is honoured also by a daemon started with another.
        """
        if wait:
            _check_timeout(timeout)
        if profile is not None and (profile.endswith(".toml") or os.sep in profile):
            profile = str(Path(profile).resolve())
        checked = self._check_profile(profile)
        if progress is not None:  # a new card with many keys takes a while to make: say so
            checked = checked or load_profile(None, state_dir=self.state_dir)
            keys = len(checked.piv.get("keys", ()))
            if keys and (fresh or not checked.state_file.exists()):
                progress(
                    f"creating a new card from profile {checked.name}: {keys} key{'s' if keys > 1 else ''} to make"
                )
        extra: dict[str, Any] = {} if self.state_dir is None else {"state_dir": str(self.state_dir.absolute())}
        reply = self.client.request("insert", slot=slot, profile=profile, fresh=fresh, **extra)
        if wait:
            _tell(progress, f"waiting for pcscd to report the card in slot {slot}")
            pcsc.wait_for_card(self.reader_name(slot), present=True, timeout=timeout)
        return reply

    def remove(self, slot: int = 0, *, wait: bool = False, timeout: float = DEFAULT_WAIT) -> dict[str, Any]:
        if wait:
            _check_timeout(timeout)
        reply = self.client.request("remove", slot=slot)
        if wait:
            pcsc.wait_for_card(self.reader_name(slot), present=False, timeout=timeout)
        return reply

    # -- traces (emulator/trace.py) ----------------------------------------------------
    def trace(
        self, slot: int | None = None, *, last: int | None = None, after: int = 0, reveal: bool = False
    ) -> list[TraceEvent]:
        """The recent events the daemon holds (oldest first): APDUs, card events, fault hits.

        ``after``: only events newer than a mark from :meth:`trace_mark`.
        ``reveal``: secrets in clear (the daemon logs that you asked, with your uid).
        """
        reply = self.client.call(messages.Trace(slot=slot, last=last, after=after, reveal=reveal))
        return list(reply.events)

    def trace_mark(self) -> int:
        """The newest event number now: pass it as ``after`` to see only what follows."""
        reply = self.client.call(messages.Trace(last=0))
        return int(reply.last_seq)

    def subscribe(self, slot: int | None = None, *, last: int = 0, reveal: bool = False) -> EventStream:
        """Stream events as they happen (``with vc.subscribe() as stream: for ev in stream: ...``)."""
        return self.client.subscribe(slot=slot, last=last, reveal=reveal)

    # -- faults (emulator/faults.py) -------------------------------------------------------
    def fault(
        self,
        kind: str | FaultKind,
        *,
        slot: int = 0,
        ins: int | None = None,
        cla: int | None = None,
        p1: int | None = None,
        applet: str | None = None,
        count: int | None = 1,
        skip: int = 0,
        sw: int | None = None,
        delay_ms: int = 0,
        atr: bytes | None = None,
        when: str | TearWhen = "before",
    ) -> FaultInfo:
        """Install a fault in ``slot``: ``sw``, ``latency``, ``mute``, ``tear``, ``slow-atr`` or ``atr``.

        It fires on the commands matching ``ins``/``cla``/``p1``/``applet`` (all:
        any), after ``skip`` of them went through, ``count`` times (None: until
        cleared). A refused fault raises :class:`RequestFailed` saying why.
        """
        request = messages.FaultAdd(
            kind=FaultKind(kind).value,
            slot=slot,
            ins=ins,
            cla=cla,
            p1=p1,
            applet=applet,
            count=count,
            skip=skip,
            sw=sw,
            delay_ms=delay_ms,
            atr=None if atr is None else bytes(atr).hex(),
            when=TearWhen(when).value,
        )
        return self.client.call(request).fault

    def fault_list(self, slot: int | None = None) -> list[FaultInfo]:
        return list(self.client.call(messages.FaultList(slot=slot)).faults)

    def fault_clear(self, slot: int | None = None, fault_id: str | None = None) -> int:
        """Remove one fault (``fault_id``) or all (of ``slot``, or everywhere); returns how many."""
        return int(self.client.call(messages.FaultClear(slot=slot, id=fault_id)).cleared)

    # -- reset ---------------------------------------------------------------------------
    def reset(self, slot: int = 0, *, timeout: float = DEFAULT_WAIT) -> None:
        """A warm reset of the card as pcscd sees it (SCardReconnect with SCARD_RESET_CARD).

        Only pcscd can reset a card so that every application learns of it
        (their handles then get SCARD_W_RESET_CARD), so this asks pcscd; it
        returns once the daemon has seen the reset (its trace shows it).
        """
        _check_timeout(timeout)
        mark = self.trace_mark()
        _pcsc_reset(self.reader_name(slot))
        deadline = time.monotonic() + timeout
        while True:
            events = self.trace(slot, after=mark)
            if any(isinstance(e, CardEvent) and e.kind == "reset" for e in events):
                return
            if time.monotonic() > deadline:
                raise StackError(f"pcscd reset the card in slot {slot} but the daemon did not see it in {timeout:g} s")
            time.sleep(0.01)


def _pcsc_reset(reader: str) -> None:
    from smartcard import scard

    protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
    hresult, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise pcsc.PcscError(f"cannot reach pcscd: {scard.SCardGetErrorMessage(hresult)}")
    try:
        hresult, card, _ = scard.SCardConnect(ctx, reader, scard.SCARD_SHARE_SHARED, protocols)
        if hresult != scard.SCARD_S_SUCCESS:
            raise pcsc.PcscError(f"cannot connect to {reader!r}: {scard.SCardGetErrorMessage(hresult)}")
        try:
            hresult, _ = scard.SCardReconnect(card, scard.SCARD_SHARE_SHARED, protocols, scard.SCARD_RESET_CARD)
            if hresult != scard.SCARD_S_SUCCESS:
                raise pcsc.PcscError(f"pcscd could not reset the card: {scard.SCardGetErrorMessage(hresult)}")
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    finally:
        scard.SCardReleaseContext(ctx)
