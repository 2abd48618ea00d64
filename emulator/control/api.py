"""The Python API: the same operations as the CLI, typed.

>>> vc = VCard()                      # the stack `vcard up` started
>>> vc.remove(wait=True)              # every PC/SC application sees the card go
>>> vc.insert(wait=True)              # ... and come back
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..profile import Profile, ProfileError, load_profile
from . import pcsc
from .client import ControlClient, DaemonNotRunning, RequestFailed
from .paths import SYSTEM_PCSCD_SOCKET, RuntimePaths, pcscd_client_env
from .stack import StackError, StackInfo, find_system_pcscd, start_daemon, start_pcscd, stop_daemon, stop_pcscd

__all__ = ["DaemonNotRunning", "ProfileError", "SlotStatus", "StackError", "Status", "VCard"]

DEFAULT_WAIT = 5.0


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
    ) -> Status:
        """Start what is not running: pcscd, the daemon, a card in slot 0.

        ``profile`` is validated before anything starts. On a stack that
        already runs, slot 0 gets a card from ``profile`` if it is empty; if
        it holds a card from another profile, or ``private`` is asked of a
        stack on the system socket, :class:`StackError` says what to do.
        """
        wanted = self._check_profile(profile)
        info = StackInfo.load(self.paths)
        fresh = False
        if info is not None and info.alive and private and not pcscd_client_env(info.pcscd_socket):
            raise StackError(
                f"a vcard stack already runs on the system pcscd socket {info.pcscd_socket}; "
                "--private was not applied (to get a private one: vcard down, then vcard up --private)"
            )
        if info is None or not info.alive:
            system = None if private else find_system_pcscd()
            if system is not None:
                info = StackInfo("external", system, str(SYSTEM_PCSCD_SOCKET), owned=False)
                info.save(self.paths)
            else:
                stop_daemon(self.paths)  # a daemon bound to a dead pcscd's namespace is useless
                info = start_pcscd(self.paths, private=private, listen_any=listen_any)
                fresh = True
        pcsc.use_socket(info.pcscd_socket)
        if not self._daemon_alive():
            start_daemon(self.paths, info, state_dir=self.state_dir, verbose=verbose, trace=trace, fresh_pcscd=fresh)
        if insert:
            slot0 = self.client.request("status")["slots"][0]
            if not slot0["present"]:
                self.insert(0, profile=profile, wait=wait)
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
        self._check_profile(profile)
        extra: dict[str, Any] = {} if self.state_dir is None else {"state_dir": str(self.state_dir.absolute())}
        reply = self.client.request("insert", slot=slot, profile=profile, fresh=fresh, **extra)
        if wait:
            pcsc.wait_for_card(self.reader_name(slot), present=True, timeout=timeout)
        return reply

    def remove(self, slot: int = 0, *, wait: bool = False, timeout: float = DEFAULT_WAIT) -> dict[str, Any]:
        if wait:
            _check_timeout(timeout)
        reply = self.client.request("remove", slot=slot)
        if wait:
            pcsc.wait_for_card(self.reader_name(slot), present=False, timeout=timeout)
        return reply
