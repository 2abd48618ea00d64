"""SCP11 as a service of the security domain: the three commands that open a session.

The ISD owns one :class:`SCP11Service` beside its SCP03/SCP02 service
(design.md, "The secure channel is a service of the ISD"); applications that
let hosts open a channel to them (PIV) hand it the same commands:

* PERFORM SECURITY OPERATION ``80 2A KVN KID[|80]``: one OCE certificate
  (:class:`~.scp11_certs.OCEChain`);
* INTERNAL AUTHENTICATE ``80 88 KVN 13``: SCP11b;
* MUTUAL AUTHENTICATE ``80 82 KVN 11|15`` (EXTERNAL AUTHENTICATE's INS, plain
  CLA): SCP11a / SCP11c after a complete certificate chain.

Keys, CA keys and allow-lists are the security domain's persistent state,
reached through :class:`SCP11KeySource` so this module stays free of the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU
from .scp11 import CA_KEY_IDS, AuthRequest, SCP11KeyID, authenticate, generate_key
from .scp11_certs import MORE_FOLLOWS, OCEChain, OCETrust

if TYPE_CHECKING:
    from ..applets.base import CommandContext

__all__ = ["SCP11INS", "SCP11KeySource", "SCP11Service"]

log = logging.getLogger(__name__)


class SCP11INS(IntEnum):
    """Instructions of the SCP11 handshake (Amd F §7)."""

    PERFORM_SECURITY_OPERATION = 0x2A
    MUTUAL_AUTHENTICATE = 0x82
    INTERNAL_AUTHENTICATE = 0x88


class SCP11KeySource(Protocol):
    def sd_key(self, kid: int, kvn: int) -> tuple[int, ec.EllipticCurvePrivateKey] | None:
        """``(kvn, key)`` of the SD key pair ``kid``/``kvn``; ``kvn`` 0: the first with that KID."""
        ...

    def oce_trust(self, kid: int, kvn: int) -> OCETrust | None:
        """The CA-KLOC public key ``kid``/``kvn`` with its issuer SKI and allow-list."""
        ...


class SCP11Service:
    """Checks OCE certificates and runs the key agreement; the new session goes to ``ctx.new_session``."""

    def __init__(
        self,
        keys: SCP11KeySource,
        *,
        sd_aid: bytes,
        ephemeral: Callable[[], ec.EllipticCurvePrivateKey] = generate_key,
    ) -> None:
        self.keys = keys
        self.sd_aid = bytes(sd_aid)
        #: injected so known-answer tests can pin the card's ephemeral key
        self.ephemeral = ephemeral
        self._handlers: dict[int, Callable[[CommandAPDU, CommandContext], ResponseAPDU]] = {
            SCP11INS.PERFORM_SECURITY_OPERATION: self.perform_security_operation,
            SCP11INS.MUTUAL_AUTHENTICATE: self.mutual_authenticate,
            SCP11INS.INTERNAL_AUTHENTICATE: self.internal_authenticate,
        }

    def handle(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """One of the three commands above, sent plain with CLA 80 (6E00 / 6982 otherwise)."""
        if not cmd.proprietary:
            raise CardError(SW.CLA_NOT_SUPPORTED, f"SCP11 INS {cmd.ins:02X} needs CLA 80")
        if cmd.secure_messaging:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, "SCP11 handshake commands go without SM")
        handler = self._handlers.get(cmd.ins)
        if handler is None:
            raise CardError(SW.INS_NOT_SUPPORTED, f"SCP11: INS {cmd.ins:02X}")
        return handler(cmd, ctx)

    def perform_security_operation(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """PERFORM SECURITY OPERATION (Amd F §7.5): one certificate of the OCE chain."""
        kid = cmd.p2 & ~MORE_FOLLOWS
        if kid not in CA_KEY_IDS:
            raise CardError(SW.INCORRECT_P1P2, f"PSO: KID {kid:02X} is not a CA key")
        current = ctx.session
        if isinstance(current, OCEChain) and current.accepting and (current.kid, current.kvn) == (kid, cmd.p1):
            try:
                return current.add(cmd)
            except CardError:
                ctx.session = None
                raise
        ctx.session = None  # a new chain ends whatever the channel had
        trust = self.keys.oce_trust(kid, cmd.p1)
        if trust is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"PSO: no CA key {kid:02X}/{cmd.p1:02X}")
        chain = OCEChain(kid, cmd.p1, trust)
        resp = chain.add(cmd)
        ctx.new_session = chain
        return resp

    def internal_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """INTERNAL AUTHENTICATE (Amd F §7.6): SCP11b, the card alone is authenticated."""
        ctx.session = None  # a handshake aborts the current session (as INITIALIZE UPDATE, GPCS §11.12.1)
        if cmd.p2 != SCP11KeyID.SCP11B:
            raise CardError(SW.INCORRECT_P1P2, f"INTERNAL AUTHENTICATE: KID {cmd.p2:02X} is not an SCP11b key")
        return self._authenticate(cmd, ctx, oce_key=None)

    def mutual_authenticate(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """MUTUAL AUTHENTICATE (Amd F §7.6): SCP11a/c, after PERFORM SECURITY OPERATION."""
        chain = ctx.session
        ctx.session = None
        if cmd.p2 not in (SCP11KeyID.SCP11A, SCP11KeyID.SCP11C):
            raise CardError(SW.INCORRECT_P1P2, f"MUTUAL AUTHENTICATE: KID {cmd.p2:02X} is not an SCP11a/c key")
        AuthRequest.parse(bytes(cmd.data), cmd.p2)  # malformed data: 6A80 before the missing chain's 6985
        if not isinstance(chain, OCEChain) or chain.oce_key is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "MUTUAL AUTHENTICATE without a verified OCE certificate")
        return self._authenticate(cmd, ctx, oce_key=chain.oce_key)

    def _authenticate(
        self, cmd: CommandAPDU, ctx: CommandContext, *, oce_key: ec.EllipticCurvePublicKey | None
    ) -> ResponseAPDU:
        found = self.keys.sd_key(cmd.p2, cmd.p1)
        if found is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"SCP11: no key {cmd.p2:02X}/{cmd.p1:02X}")
        kvn, sd_key = found
        resp, session = authenticate(
            cmd, kvn=kvn, sd_key=sd_key, oce_key=oce_key, sd_aid=self.sd_aid, ephemeral=self.ephemeral
        )
        ctx.new_session = session
        log.debug("channel %d: %s session open with key %02X/%02X", ctx.channel, session.protocol, cmd.p2, kvn)
        return resp
