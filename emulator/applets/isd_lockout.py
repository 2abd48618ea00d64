"""Failed-authentication counters per key, and the reset a YubiKey does when every key is blocked.

A persona may give the ISD a :class:`KeyLockout` policy (``yubikey-5.7`` does,
``gp-standard`` and ``piv-nist`` do not: PERSONAS.md). With one, every key
that can open a secure channel has a counter of failed authentications:

* an SCP03/SCP02 key set counts each INITIALIZE UPDATE (the card cannot tell a
  wrong host from a slow one until EXTERNAL AUTHENTICATE) and forgets the count
  when EXTERNAL AUTHENTICATE succeeds; a failed one stays counted;
* an SCP11 key pair counts each failed INTERNAL AUTHENTICATE (11b) or MUTUAL
  AUTHENTICATE (11a/c), an OCE CA key each refused PERFORM SECURITY OPERATION;
  a successful authentication forgets the counts of the keys it used.

A key with ``limit`` failures is blocked: its handshakes answer 6983
(authentication method blocked). INITIALIZE UPDATE with P1 00 uses the first
key set that is not blocked. When a blocked key is tried and every key of the
security domain is blocked, the card resets the security domain
(``factory_reset``): the profile's key sets come back (the factory SCP03 key
set, KVN FF), the SCP11 keys, certificates, CA identifiers and allow-lists go,
a new SCP11b key pair is generated if the profile makes one, and the counters
start again; one store transaction. yubikit's ``SecurityDomainSession.reset()``
relies on exactly this (it tries each key until 6983 or 6982).

Yubico does not publish the number of attempts; yubikit tries each key up to
65 times. vcard blocks after :data:`YUBIKEY_LIMIT`.

Persistent state: ``auth_failures`` in the ISD's namespace, JSON
``{"KID/KVN": failures}`` (key sets under KID 01).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..gp.scp02 import SCP02Card
from ..gp.scp03 import SCP03Card
from ..gp.scp11 import CA_KEY_IDS
from ..gp.scp11_certs import OCEChain
from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU
from .base import CommandContext
from .isd_keys import KEYSETS, keyset_to_json
from .isd_scp11 import DOCUMENT as SCP11_DOCUMENT
from .isd_scp11 import factory_scp11b

if TYPE_CHECKING:
    from .isd import ISDApplet

__all__ = ["YUBIKEY_LIMIT", "KeyLockout", "Lockout"]

log = logging.getLogger(__name__)

FAILURES = "auth_failures"
KEYSET_KID = 0x01  #: an SCP03/SCP02 key set counts under its ENC key's identifier
YUBIKEY_LIMIT = 10
#: status words that say nothing about the key: no such key, wrong P1/P2, INS or CLA
_NOT_A_TRY = frozenset({SW.REFERENCED_DATA_NOT_FOUND, SW.INCORRECT_P1P2, SW.INS_NOT_SUPPORTED, SW.CLA_NOT_SUPPORTED})


@dataclass(frozen=True)
class KeyLockout:
    """A persona's policy: failures that block a key, and whether all blocked resets the SD."""

    limit: int = YUBIKEY_LIMIT
    factory_reset: bool = True


def _ref(kid: int, kvn: int) -> str:
    return f"{kid:02X}/{kvn:02X}"


class Lockout:
    """The ISD's counters under one :class:`KeyLockout` policy; wraps its handshake commands."""

    def __init__(self, isd: ISDApplet, policy: KeyLockout) -> None:
        self.isd = isd
        self.policy = policy

    # -- counters -----------------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        raw: dict[str, int] = self.isd.store.get_json(FAILURES, {}) or {}
        return raw

    def _blocked(self, ref: str) -> bool:
        return self._counts().get(ref, 0) >= self.policy.limit

    def _fail(self, ref: str) -> None:
        counts = self._counts()
        counts[ref] = min(counts.get(ref, 0) + 1, self.policy.limit)
        self.isd.store.put(FAILURES, json.dumps(counts, sort_keys=True).encode())
        if counts[ref] == self.policy.limit:
            log.warning("key %s blocked after %d failed authentications", ref, self.policy.limit)

    def _succeed(self, *refs: str) -> None:
        counts = self._counts()
        if any(counts.get(r) for r in refs):
            for r in refs:
                counts.pop(r, None)
            self.isd.store.put(FAILURES, json.dumps(counts, sort_keys=True).encode())

    def _all_refs(self) -> list[str]:
        refs = [_ref(KEYSET_KID, ks.kvn) for ks in self.isd.keys.keysets()]
        scp11 = self.isd.scp11.keys()  # a list, not a dict
        return refs + [_ref(k.kid, k.kvn) for k in scp11]

    def _refuse_blocked(self, ref: str, ctx: CommandContext) -> CardError:
        """6983 for a blocked key; first the factory reset if every key is blocked."""
        refs = self._all_refs()
        if self.policy.factory_reset and refs and all(self._blocked(r) for r in refs):
            self.factory_reset()
            ctx.session = None
        return CardError(SW.AUTH_METHOD_BLOCKED, f"key {ref} is blocked")

    def factory_reset(self) -> None:
        """Back to the profile's key sets and SCP11b key pair, counters cleared: one transaction."""
        config = self.isd.config
        keysets = json.dumps([keyset_to_json(k) for k in config.keysets], sort_keys=True).encode()
        scp11 = factory_scp11b(config.scp11b_kvn) if config.scp11b_kvn else None
        self.isd.store.put_many({KEYSETS: keysets, SCP11_DOCUMENT: scp11, FAILURES: None})
        log.warning("every key was blocked: security domain reset to its factory keys")

    # -- SCP03 / SCP02 --------------------------------------------------------------------
    def initialize_update(
        self, cmd: CommandAPDU, ctx: CommandContext, run: Callable[[CommandAPDU], ResponseAPDU]
    ) -> ResponseAPDU:
        """Count the try against the key set (P1 00: the first one not blocked), then run it."""
        sets = self.isd.keys.keysets()
        if cmd.p1 == 0x00:
            chosen = next((ks for ks in sets if not self._blocked(_ref(KEYSET_KID, ks.kvn))), None)
            if chosen is None:
                if not sets:
                    return run(cmd)  # no key set at all: the service answers 6A88
                ctx.session = None
                raise self._refuse_blocked(_ref(KEYSET_KID, sets[0].kvn), ctx)
            cmd = CommandAPDU(cmd.cla, cmd.ins, chosen.kvn, cmd.p2, cmd.data, cmd.ne, cmd.extended)
        ref = _ref(KEYSET_KID, cmd.p1)
        if any(ks.kvn == cmd.p1 for ks in sets):
            if self._blocked(ref):
                ctx.session = None
                raise self._refuse_blocked(ref, ctx)
            self._fail(ref)  # forgotten when EXTERNAL AUTHENTICATE succeeds
        return run(cmd)

    def external_authenticate(
        self, cmd: CommandAPDU, ctx: CommandContext, run: Callable[[CommandAPDU], ResponseAPDU]
    ) -> ResponseAPDU:
        session = ctx.session
        chain = session if isinstance(session, OCEChain) else None
        if not cmd.secure_messaging and cmd.p2 in (0x11, 0x15):  # SCP11a/c MUTUAL AUTHENTICATE
            refs = [_ref(chain.kid, chain.kvn)] if chain is not None else []
            return self._scp11(cmd, ctx, run, extra=refs)
        resp = run(cmd)
        if isinstance(session, (SCP03Card, SCP02Card)):
            self._succeed(_ref(KEYSET_KID, session.kvn))
        return resp

    # -- SCP11 ------------------------------------------------------------------------------
    def _scp11(
        self, cmd: CommandAPDU, ctx: CommandContext, run: Callable[[CommandAPDU], ResponseAPDU], *, extra: list[str]
    ) -> ResponseAPDU:
        """INTERNAL / MUTUAL AUTHENTICATE or PSO on key ``P2``/``P1``: blocked, counted, or forgotten."""
        kid = cmd.p2 & 0x7F
        scp11 = self.isd.scp11.keys()
        key = next((k for k in scp11 if k.kid == kid and cmd.p1 in (0, k.kvn)), None)
        if key is None:
            return run(cmd)  # the service answers 6A88 / 6A86
        ref = _ref(key.kid, key.kvn)
        if self._blocked(ref):
            ctx.session = None
            raise self._refuse_blocked(ref, ctx)
        try:
            resp = run(cmd)
        except CardError as exc:
            if exc.sw not in _NOT_A_TRY:
                self._fail(ref)
            raise
        if kid not in CA_KEY_IDS:  # an authentication succeeded; a PSO only accepted a certificate
            self._succeed(ref, *extra)
        return resp

    def scp11_command(
        self, cmd: CommandAPDU, ctx: CommandContext, run: Callable[[CommandAPDU], ResponseAPDU]
    ) -> ResponseAPDU:
        """INTERNAL AUTHENTICATE (SCP11b) and PERFORM SECURITY OPERATION (an OCE CA key)."""
        return self._scp11(cmd, ctx, run, extra=[])
