"""GPSession: a security domain behind an open SCP03 or SCP02 secure channel (GPCS §11), host side.

Built on the host stack: :mod:`minidriver.protocol` frames and wraps,
:mod:`minidriver.gpobjects` decodes. It never imports the card side, so the
end-to-end tests that use it check one implementation against the other
(design.md, "Host side and card side are written apart").

Failures: a status word other than the one needed is an
:class:`~minidriver.iso7816.ApduError` (``.sw``); wrong keys an
:class:`~minidriver.scpbase.AuthenticationError`; an answer that does not
decode a :class:`~minidriver.iso7816.BadResponseError`; a bad argument a
``ValueError``. :data:`HOST_ERRORS` lists what a caller catches to report a
failed operation. Keys, cryptograms and decrypted data are never logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from enum import IntEnum

from cryptography.hazmat.primitives.asymmetric import ec

from .gpobjects import (
    CardResources,
    KeyInfo,
    RegistryEntry,
    SCPCapability,
    StatusScope,
    parse_application_list,
    parse_card_capabilities,
    parse_card_resources,
    parse_key_information,
    parse_status,
    scp_i_from_card_data,
)
from .iso7816 import SW, ApduError, BadResponseError, CommandAPDU, ResponseAPDU, encode_tlv
from .pcsc import Connection, PcscError
from .protocol import SmartCardProtocol, strongest_level
from .scp02 import SCP02_LEVELS, SCP02Host
from .scp03 import SCP03_LEVELS, SCP03Host
from .scp11 import SCP11Host, SCP11Params
from .scp11_keys import (
    delete_key_command,
    generate_key_command,
    get_certificates_command,
    parse_certificates,
    parse_generated_key,
    put_ec_key_command,
    store_allow_list_command,
    store_ca_issuer_command,
    store_certificates_command,
)
from .scpbase import AuthenticationError, SCPError, StaticKeys

__all__ = [
    "DEFAULT_TEST_KEY",
    "HOST_ERRORS",
    "ISD_AID",
    "GPSession",
    "LifeCycleScope",
    "logical_channel",
]

log = logging.getLogger(__name__)

ISD_AID = bytes.fromhex("A000000151000000")
#: the GlobalPlatform "VISA default" test key 40..4F (gp-scp.md §5); never a real key
DEFAULT_TEST_KEY = bytes(range(0x40, 0x50))
CHALLENGE_LEN = 8
KVN_OFFSET = 10  #: KDD (10) || KVN || SCP id in the INITIALIZE UPDATE response
SCP_ID_OFFSET = 11
DEFAULT_SCP02_I = 0x15
MAX_STATUS_PAGES = 256  #: GET STATUS rounds before we call the card broken
CLA_GP = 0x80
#: what a caller catches to report a failed host operation in one line
HOST_ERRORS = (ApduError, SCPError, BadResponseError, PcscError)


class INS(IntEnum):
    """Instructions this session sends (ISO 7816-4 §11, GPCS §11)."""

    SELECT = 0xA4
    MANAGE_CHANNEL = 0x70
    GET_DATA = 0xCA
    GET_STATUS = 0xF2
    DELETE = 0xE4
    SET_STATUS = 0xF0


class GetStatusP2(IntEnum):
    """P2 of GET STATUS (GPCS §11.4.2.2): TLV response format, first or next occurrence."""

    FIRST_TLV = 0x02
    NEXT_TLV = 0x03


class LifeCycleScope(IntEnum):
    """P1 of SET STATUS (GPCS §11.10.2.1)."""

    ISD = 0x80  #: card life cycle
    APPLICATION = 0x40  #: an application or SD (P2 80 lock, 00 unlock)
    SD_AND_APPLICATIONS = 0x60


class DataTag(IntEnum):
    """GET DATA tags read here (GPCS §11.3.3)."""

    CARD_DATA = 0x0066
    CARD_CAPABILITY = 0x0067
    KEY_INFORMATION = 0x00E0
    SECURITY_LEVEL = 0x00D3
    APPLICATIONS = 0x2F00
    CARD_RESOURCES = 0xFF21


class GPSession:
    """An open secure channel to a security domain on one logical channel. Build it with :meth:`open`."""

    def __init__(
        self,
        protocol: SmartCardProtocol,
        host: SCP03Host | SCP02Host,
        *,
        scp: int,
        kvn: int,
        level: int,
        channel: int,
        i: int,
    ) -> None:
        self.protocol = protocol
        self.host = host
        self.scp = scp
        self.kvn = kvn
        self.level = level
        self.channel = channel
        self.i = i

    @classmethod
    def open(
        cls,
        connection: Connection,
        keys: StaticKeys,
        *,
        kvn: int = 0,
        level: int | None = None,
        channel: int = 0,
        sd_aid: bytes = ISD_AID,
        select: bool = True,
        scp02_i: int | None = None,
        s16: bool | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> GPSession:
        """SELECT ``sd_aid`` (unless ``select`` is false), INITIALIZE UPDATE, EXTERNAL AUTHENTICATE.

        ``kvn`` 0 lets the card pick its first key set. SCP02 or SCP03 comes
        from the card's INITIALIZE UPDATE response (its 12th byte), so one call
        opens either. ``level`` None picks the strongest both sides offer
        (:func:`~minidriver.protocol.strongest_level`). SCP02's i-parameter is
        not in that response: it comes from card data (GET DATA 66), else 15.
        ``s16`` (SCP03 S16 mode, 16-byte challenges and MACs) None likewise
        follows the SCP03 i-parameter of the card data (bit 01), else S8; pass
        False to open an SCP02 key set on a card whose SCP03 runs in S16.
        """
        if not 0x00 <= kvn <= 0xFF:
            raise ValueError(f"key version must be 0x00-0xFF, got 0x{kvn:02X}")
        protocol = SmartCardProtocol(connection)
        cla = channel & 0x03
        if select:
            resp = protocol.transceive(CommandAPDU(cla, INS.SELECT, 0x04, 0x00, sd_aid, 256))
            if resp.sw not in (SW.OK, SW.WARNING_CARD_LOCKED):
                raise ApduError(resp.sw, resp.data, f"SELECT of the security domain {sd_aid.hex().upper()}")
            if scp02_i is None or s16 is None:
                card_data = protocol.transceive(
                    CommandAPDU(CLA_GP | cla, INS.GET_DATA, 0x00, DataTag.CARD_DATA, ne=256)
                )
                data66 = card_data.data if card_data.ok else b""
                scp02_i = scp_i_from_card_data(data66, 0x02) if scp02_i is None else scp02_i
                if s16 is None:
                    scp03_i = scp_i_from_card_data(data66, 0x03)
                    s16 = scp03_i is not None and bool(scp03_i & 0x01)
        s16 = bool(s16)
        challenge = random(2 * CHALLENGE_LEN if s16 else CHALLENGE_LEN)
        probe = SCP03Host(keys, host_challenge=challenge, sd_aid=sd_aid, channel=channel, s16=s16)
        resp = protocol.transceive(CommandAPDU.parse(probe.initialize_update_apdu(kvn)))
        if resp.sw == SW.REFERENCED_DATA_NOT_FOUND:
            raise ApduError(resp.sw, resp.data, f"the card has no key set {kvn:02X} (INITIALIZE UPDATE)")
        data = resp.check("INITIALIZE UPDATE")
        if len(data) <= SCP_ID_OFFSET:
            raise BadResponseError(f"INITIALIZE UPDATE response of {len(data)} bytes is too short")
        scp, card_kvn = data[SCP_ID_OFFSET], data[KVN_OFFSET]
        host: SCP03Host | SCP02Host
        if scp == 0x03:
            host = probe
        elif scp == 0x02:
            host = SCP02Host(keys, i=scp02_i or DEFAULT_SCP02_I, host_challenge=challenge, channel=channel)
            host.initialize_update_apdu(kvn)  # same challenge: puts the host in CHALLENGED
        else:
            raise BadResponseError(f"the card answered with SCP{scp:02X}; only SCP02 and SCP03 are supported")
        try:
            info = host.process_initialize_update_response(data)
        except AuthenticationError:
            raise AuthenticationError(
                f"card cryptogram mismatch: wrong keys for key set {card_kvn:02X} (SCP{scp:02X})"
            ) from None
        i = getattr(info, "i", scp02_i or DEFAULT_SCP02_I)
        level = strongest_level(scp, i) if level is None else level
        allowed = SCP03_LEVELS if scp == 0x03 else SCP02_LEVELS
        if level not in allowed:
            host.close()
            choices = " ".join(f"{x:02X}" for x in sorted(allowed))
            raise ValueError(f"SCP{scp:02X} security level must be one of {choices}, got {level:02X}")
        resp = protocol.transceive(CommandAPDU.parse(host.external_authenticate_apdu(level)))
        try:
            host.process_external_authenticate_response(bytes(resp))
        except AuthenticationError as exc:
            raise AuthenticationError(f"EXTERNAL AUTHENTICATE refused: SW {resp.sw:04X}", sw=exc.sw) from None
        protocol.use_scp(host)
        log.debug("secure channel open: SCP%02X, key set %02X, level %02X", scp, card_kvn, level)
        return cls(protocol, host, scp=scp, kvn=card_kvn, level=level, channel=channel, i=i)

    @classmethod
    def open_scp11(
        cls,
        connection: Connection,
        params: SCP11Params,
        *,
        channel: int = 0,
        sd_aid: bytes = ISD_AID,
        select: bool = True,
    ) -> GPSession:
        """SELECT ``sd_aid`` (unless ``select`` is false) and open SCP11a/b/c with ``params`` (Amd F).

        SCP11b authenticates the card only: the card refuses management
        commands in such a session (6982). SCP11a authenticates both sides.
        """
        protocol = SmartCardProtocol(connection)
        if select:
            resp = protocol.transceive(CommandAPDU(channel & 0x03, INS.SELECT, 0x04, 0x00, sd_aid, 256))
            if resp.sw not in (SW.OK, SW.WARNING_CARD_LOCKED):
                raise ApduError(resp.sw, resp.data, f"SELECT of the security domain {sd_aid.hex().upper()}")
        host = SCP11Host(params, channel=channel)
        level = protocol.open_scp11(host)
        log.debug("secure channel open: %s, key %02X/%02X", params.variant.name, params.kid, params.kvn)
        return cls(protocol, host, scp=0x11, kvn=params.kvn, level=level, channel=channel, i=0)

    # -- wrapped commands ---------------------------------------------------------------
    def transceive(self, cmd: CommandAPDU) -> ResponseAPDU:
        """Wrap one plain command (CLA without the SM bit), transmit, unwrap; any SW comes back."""
        return self.protocol.transceive(cmd)

    def send(self, cmd: CommandAPDU, *, detail: str = "") -> bytes:
        """Like :meth:`transceive`, but anything but 9000 raises :class:`ApduError`."""
        return self.protocol.send(cmd, detail=detail)

    def _cla(self) -> int:
        return CLA_GP | self.channel

    def get_data(self, tag: int) -> bytes:
        """GET DATA (GPCS §11.3): the whole TLV the card returns for ``tag``."""
        cmd = CommandAPDU(self._cla(), INS.GET_DATA, tag >> 8, tag & 0xFF, ne=256)
        return self.send(cmd, detail=f"GET DATA {tag:04X}")

    def key_information(self) -> list[KeyInfo]:
        """GET DATA E0, the key information template."""
        return parse_key_information(self.get_data(DataTag.KEY_INFORMATION))

    def card_capabilities(self) -> list[SCPCapability]:
        """GET DATA 67, card capability information (GPCS §H.4): one entry per secure channel protocol."""
        return parse_card_capabilities(self.get_data(DataTag.CARD_CAPABILITY))

    def security_level(self) -> int:
        """GET DATA D3, the current security level of this channel as the card sees it (b8 AUTHENTICATED)."""
        data = self.get_data(DataTag.SECURITY_LEVEL)
        if len(data) != 3 or data[:2] != b"\xd3\x01":
            raise BadResponseError(f"GET DATA D3: expected D3 01 xx, got {data.hex()}")
        return data[2]

    def applications(self) -> list[bytes]:
        """GET DATA 2F00, the AIDs of the applications that can be selected now; [] when none."""
        resp = self.transceive(CommandAPDU(self._cla(), INS.GET_DATA, 0x2F, 0x00, ne=256))
        if resp.sw == SW.REFERENCED_DATA_NOT_FOUND:
            return []
        return parse_application_list(resp.check("GET DATA 2F00"))

    def card_resources(self) -> CardResources:
        """GET DATA FF21, extended card resources information (GP Amendment C)."""
        return parse_card_resources(self.get_data(DataTag.CARD_RESOURCES))

    def get_status(self, scope: StatusScope, *, aid_prefix: bytes = b"") -> list[RegistryEntry]:
        """GET STATUS in TLV form (GPCS §11.4), following 6310 with P2 'next occurrence'.

        No matching entry (6A88) is an empty list.
        """
        query = encode_tlv(0x4F, aid_prefix)
        p2 = GetStatusP2.FIRST_TLV
        out = b""
        for _ in range(MAX_STATUS_PAGES):
            resp = self.transceive(CommandAPDU(self._cla(), INS.GET_STATUS, scope, p2, query, 256))
            if resp.sw == SW.REFERENCED_DATA_NOT_FOUND and p2 == GetStatusP2.FIRST_TLV:
                return []
            if resp.sw not in (SW.OK, SW.MORE_STATUS):
                raise ApduError(resp.sw, resp.data, f"GET STATUS {scope.name}")
            out += resp.data
            if resp.sw == SW.OK:
                return parse_status(scope, out)
            p2 = GetStatusP2.NEXT_TLV
        raise BadResponseError("GET STATUS: the card never stopped answering 6310")

    def registry(self) -> list[RegistryEntry]:
        """The ISD, the applications and the executable load files with their modules."""
        return [
            *self.get_status(StatusScope.ISD),
            *self.get_status(StatusScope.APPLICATIONS),
            *self.get_status(StatusScope.LOAD_FILES_AND_MODULES),
        ]

    def put_key(self, new_keys: StaticKeys, *, replace_kvn: int = 0) -> None:
        """PUT KEY (GPCS §11.8): add (``replace_kvn`` 0) or replace a whole ENC/MAC/DEK key set.

        SCP03 sends AES keys under the static DEK, SCP02 3DES keys under the
        session DEK; the card's KVN||KCV answer is checked.
        """
        if not 0x01 <= new_keys.kvn <= 0x7F:
            raise ValueError(f"new key set KVN must be 0x01-0x7F, got 0x{new_keys.kvn:02X}")
        if self.scp == 0x02 and {len(new_keys.enc), len(new_keys.mac), len(new_keys.dek)} != {16}:
            raise ValueError("an SCP02 session puts 3DES key sets: every key must be 16 bytes")
        command = self.host.put_key(new_keys)
        plain = CommandAPDU.parse(command.apdu(replace_kvn=replace_kvn))
        cmd = CommandAPDU(plain.cla | self.channel, plain.ins, plain.p1, plain.p2, plain.data, plain.ne)
        resp = self.transceive(cmd)
        if resp.sw == SW.REFERENCED_DATA_NOT_FOUND and replace_kvn:
            raise ApduError(resp.sw, resp.data, f"PUT KEY: the card has no key set {replace_kvn:02X} to replace")
        resp.check("PUT KEY")
        command.check_reply(bytes(resp))

    def delete_key_id(self, kid: int, *, delete_last: bool = False) -> None:
        """DELETE by key identifier alone: ``D0 01 KID`` (GPCS §11.2.2.3): every key with that KID.

        ``delete_last`` sets P2 01, which a YubiKey (and vcard) needs before it lets the last keys go.
        """
        if not 0x01 <= kid <= 0x7F:
            raise ValueError(f"key identifier must be 0x01-0x7F, got 0x{kid:02X}")
        data = encode_tlv(0xD0, bytes((kid,)))
        resp = self.transceive(CommandAPDU(self._cla(), INS.DELETE, 0x00, int(delete_last), data, 256))
        if resp.sw == SW.REFERENCED_DATA_NOT_FOUND:
            raise ApduError(resp.sw, resp.data, f"DELETE: the card has no key with identifier {kid:02X}")
        resp.check("DELETE key")

    def delete_key(self, kvn: int) -> None:
        """DELETE a whole key set: ``D2 01 KVN`` (GPCS §11.2.2.3)."""
        if not 0x01 <= kvn <= 0xFF:
            raise ValueError(f"key version must be 0x01-0xFF, got 0x{kvn:02X}")
        resp = self.transceive(CommandAPDU(self._cla(), INS.DELETE, 0x00, 0x00, encode_tlv(0xD2, bytes((kvn,))), 256))
        if resp.sw == SW.REFERENCED_DATA_NOT_FOUND:
            raise ApduError(resp.sw, resp.data, f"DELETE: the card has no key set {kvn:02X}")
        resp.check("DELETE key")

    # -- SCP11 keys (Amd F; minidriver.scp11_keys) ----------------------------------------
    def _on_channel(self, cmd: CommandAPDU) -> CommandAPDU:
        return CommandAPDU(cmd.cla | self.channel, cmd.ins, cmd.p1, cmd.p2, cmd.data, cmd.ne)

    def put_ec_key(
        self,
        kid: int,
        kvn: int,
        key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey,
        *,
        replace_kvn: int = 0,
    ) -> None:
        """PUT KEY of an SCP11 key: an SD key pair (KID 11/13/15) or an OCE CA public key (10, 20-2F).

        The private key travels under the session's DEK (static DEK under
        SCP03, S-DEK under SCP11); the card answers the KVN.
        """
        if self.scp == 0x02:
            raise ValueError("SCP11 keys are put over SCP03 or SCP11a, not SCP02")
        dek = self.host.dek_encrypt if isinstance(self.host, SCP03Host) else None
        cmd = put_ec_key_command(kid, kvn, key, dek=None, replace_kvn=replace_kvn, encrypt=dek)
        data = self.send(self._on_channel(cmd), detail=f"PUT KEY {kid:02X}/{kvn:02X}")
        if data != bytes((kvn,)):
            raise BadResponseError(f"PUT KEY: the card answered {data.hex()}, not the KVN {kvn:02X}")

    def generate_ec_key(self, kid: int, kvn: int, *, replace_kvn: int = 0) -> ec.EllipticCurvePublicKey:
        """GENERATE KEY of an SD key pair on the card; its public key."""
        cmd = generate_key_command(kid, kvn, replace_kvn=replace_kvn)
        return parse_generated_key(self.send(self._on_channel(cmd), detail=f"GENERATE KEY {kid:02X}/{kvn:02X}"))

    def store_certificates(self, kid: int, kvn: int, certificates: list[bytes]) -> None:
        """STORE DATA of key ``kid``/``kvn``'s certificate chain (DER, leaf last)."""
        self.send(self._on_channel(store_certificates_command(kid, kvn, certificates)), detail="STORE DATA BF21")

    def store_allow_list(self, kid: int, kvn: int, serials: list[int]) -> None:
        """STORE DATA of the OCE certificate serials CA key ``kid``/``kvn`` accepts ([]: any)."""
        self.send(self._on_channel(store_allow_list_command(kid, kvn, serials)), detail="STORE DATA allow-list")

    def store_ca_issuer(self, kid: int, kvn: int, ski: bytes, *, klcc: bool = False) -> None:
        """STORE DATA of the CA issuer identifier (subject key identifier) of key ``kid``/``kvn``."""
        self.send(self._on_channel(store_ca_issuer_command(kid, kvn, ski, klcc=klcc)), detail="STORE DATA CA issuer")

    def certificates(self, kid: int, kvn: int) -> list[bytes]:
        """GET DATA BF21: key ``kid``/``kvn``'s certificates, leaf last; [] when none are stored."""
        resp = self.transceive(self._on_channel(get_certificates_command(kid, kvn)))
        if resp.sw == SW.REFERENCED_DATA_NOT_FOUND:
            return []
        return parse_certificates(resp.check("GET DATA BF21"))

    def delete_scp11_keys(self, *, kid: int | None = None, kvn: int | None = None) -> None:
        """DELETE the SCP11 keys matching ``kid`` and/or ``kvn``."""
        self.send(self._on_channel(delete_key_command(kid=kid, kvn=kvn)), detail="DELETE SCP11 key")

    def set_status(self, scope: int, state: int, aid: bytes = b"") -> None:
        """SET STATUS (GPCS §11.10): P1 80 card life cycle, P1 40 lock (80) / unlock (00) an application."""
        self.send(CommandAPDU(self._cla(), INS.SET_STATUS, scope, state, aid), detail="SET STATUS")

    def close(self) -> None:
        """Forget the session keys (the card ends its side on SELECT, reset or channel close)."""
        self.protocol.close()


@contextmanager
def logical_channel(connection: Connection) -> Iterator[int]:
    """MANAGE CHANNEL open / close (ISO 7816-4 §11.1.2), so the basic channel is left alone.

    Yields 0 (the basic channel) when the card has no free channel. Closing
    the channel also ends any secure channel opened on it.
    """
    protocol = SmartCardProtocol(connection)
    resp = protocol.transceive(CommandAPDU(0x00, INS.MANAGE_CHANNEL, 0x00, 0x00, ne=1))
    if not resp.ok or len(resp.data) != 1 or not 1 <= resp.data[0] <= 3:
        yield 0
        return
    number = resp.data[0]
    try:
        yield number
    finally:
        with suppress(*HOST_ERRORS):
            protocol.transceive(CommandAPDU(number, INS.MANAGE_CHANNEL, 0x80, number))


def factory_keys_listed(connection: Connection, channel: int, *, kvn: int) -> bool:
    """SELECT the ISD on ``channel`` and look for key set ``kvn`` in GET DATA E0 (no authentication needed)."""
    protocol = SmartCardProtocol(connection)
    resp = protocol.transceive(CommandAPDU(channel & 0x03, INS.SELECT, 0x04, 0x00, ISD_AID, 256))
    if resp.sw not in (SW.OK, SW.WARNING_CARD_LOCKED):
        raise ApduError(resp.sw, resp.data, f"no security domain {ISD_AID.hex().upper()} on this card (SELECT)")
    resp = protocol.transceive(CommandAPDU(CLA_GP | channel, INS.GET_DATA, 0x00, DataTag.KEY_INFORMATION, ne=256))
    return resp.ok and any(k.kvn == kvn for k in parse_key_information(resp.data))
