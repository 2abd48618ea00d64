"""Build a VirtualCard from a profile and its store (the applets' wiring).

With an ISD, the registry is the ISD's: built-in load files are registered
with it and the instances it persisted (those the profile asked for when the
card was created, plus any INSTALLed since) are rebuilt from its state, with
their life cycle and privileges (GPCS §9.3).

:func:`open_card` is how the daemon inserts a card: the state file is checked
(a foreign or damaged file is refused and left untouched) and a new card is
built inside one store batch, so its file holds the whole card or does not
exist: a profile rejected half-way leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from .applets.base import Applet
from .applets.isd import ISDApplet
from .applets.isd_content import AppLifeCycle, AppRecord, ExecutableModule, GPRegistry, LoadFile
from .card import VirtualCard
from .profile import Profile, default_state_dir
from .registry import Registry
from .store import StateError, StorageFailure, Store

__all__ = ["PIV_ELF_AID", "PIV_INSTANCE_AID", "PIV_MODULE_AID", "build_card", "open_card"]

log = logging.getLogger(__name__)

#: life cycle of a security domain that is personalized (GPCS §5.3.2)
SD_PERSONALIZED = 0x0F
APP_SELECTABLE = 0x07
ISD_PRIVILEGES = bytes.fromhex("9AFE80")

#: the built-in PIV load file, its module and the default instance (SP 800-73-4 part 1 §2.2)
PIV_ELF_AID = bytes.fromhex("A000000308")
PIV_MODULE_AID = bytes.fromhex("A00000030800001000")
PIV_INSTANCE_AID = bytes.fromhex("A000000308000010000100")
PIV_NAMESPACE = "piv"


def _piv_namespace(aid: bytes) -> str:
    """The default instance keeps the historical namespace; further instances get their own."""
    return PIV_NAMESPACE if aid == PIV_INSTANCE_AID else f"{PIV_NAMESPACE}/{aid.hex().upper()}"


def _piv_load_file(profile: Profile, store: Store, isd: ISDApplet | None) -> LoadFile | None:
    try:
        from .applets.piv import PIVApplet
    except ImportError:  # pragma: no cover - while the PIV applet is being built
        log.warning("PIV applet not available in this build")
        return None

    def create(aid: bytes) -> Applet:
        if aid == PIV_INSTANCE_AID:
            return PIVApplet.from_profile(
                store.namespace("piv"),
                profile.piv,
                secure_channel=getattr(isd, "service", None),
                persona=profile.persona,
            )
        applet = PIVApplet.from_profile(
            store.namespace(_piv_namespace(aid)),
            profile.piv,
            secure_channel=getattr(isd, "service", None),
            persona=profile.persona,
        )
        applet.aid = aid
        return applet

    def destroy(aid: bytes) -> None:
        ns = store.namespace(_piv_namespace(aid))
        ns.put_many(dict.fromkeys(ns.keys()))

    return LoadFile(PIV_ELF_AID, (ExecutableModule(PIV_MODULE_AID, create, destroy),))


def build_card(profile: Profile, store: Store) -> VirtualCard:
    registry: Registry
    if "isd" not in profile.applets:
        registry = Registry()
        piv = _piv_load_file(profile, store, None)
        if "piv" in profile.applets and piv is not None:
            registry.add(piv.modules[0].create(PIV_INSTANCE_AID), life_cycle=APP_SELECTABLE)
    else:
        registry = GPRegistry()
        initial: tuple[AppRecord, ...] = ()
        if "piv" in profile.applets:
            initial = (AppRecord(PIV_INSTANCE_AID, PIV_ELF_AID, PIV_MODULE_AID, AppLifeCycle.SELECTABLE),)
        isd = ISDApplet.from_profile(
            store.namespace("isd"), profile.isd, registry=registry, initial_instances=initial, persona=profile.persona
        )
        registry.add(isd, life_cycle=SD_PERSONALIZED, privileges=ISD_PRIVILEGES)
        for load_file in _builtin_load_files(profile, store, isd):
            isd.register_load_file(load_file)
        isd.restore_instances()
    if store.get_meta("profile") is None:
        store.set_meta("profile", profile.name)
    return VirtualCard(profile.atr, registry, logical_channels=profile.logical_channels)


def open_card(profile: Profile, *, exclusive: bool = True) -> tuple[VirtualCard, Store]:
    """The card of ``profile`` and its open store; a new card is written all at once.

    Raises :class:`StateError` (one line saying what to do) when the state
    file or its directory cannot be used; nothing is then created or changed.
    """
    path = Path(profile.state_file)
    _check_state_dir(path.parent)
    store = Store(path, exclusive=exclusive)
    try:
        if store.exists:
            return build_card(profile, store), store
        with store.batch():  # a new card: one transaction, committed by creating the file
            card = build_card(profile, store)  # it always records the profile: the file is created
        return card, store
    except StorageFailure as exc:  # the card could not be written at insert: say so, in one line
        store.close()
        raise StateError(f"{exc.detail}; free disk space or fix the file's permissions, then insert again") from None
    except BaseException:
        store.close()
        raise


def _check_state_dir(directory: Path) -> None:
    """The default state directory must be private to this user (never planted by another)."""
    from .control.stack.paths import private_dir_problem

    if directory != default_state_dir() or not os.path.lexists(directory):
        return
    problem = private_dir_problem(directory, what="state directory")
    if problem is not None:
        raise StateError(problem)


def _builtin_load_files(profile: Profile, store: Store, isd: ISDApplet) -> list[LoadFile]:
    makers: list[Callable[[Profile, Store, ISDApplet | None], LoadFile | None]] = [_piv_load_file]
    return [lf for lf in (make(profile, store, isd) for make in makers) if lf is not None]
