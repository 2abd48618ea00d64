"""Card side of SCP11 (emulator/gp/scp11*.py and the ISD's SCP11 keys): vectors, handshakes, refusals.

Independent clients: yubikit's ``ScpState`` (SCP11b, Yubico's implementation)
and the project's host side (minidriver/scp11.py), both talking to a whole
virtual card in memory.
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from scp11_support import Chain, issue_leaf, make_chain, run_handshake, send_chained, send_wrapped, transmit
from yubikit.core import Tlv
from yubikit.core.smartcard.scp import KeyRef, Scp11KeyParams, ScpState

from emulator.card import VirtualCard
from emulator.factory import build_card
from emulator.gp.scp11 import derive_session_keys
from emulator.iso7816 import ResponseAPDU
from emulator.profile import Profile
from emulator.store import MemoryStore
from minidriver import scp11_keys
from minidriver.iso7816 import CommandAPDU as HostCommand
from minidriver.scp03 import SCP03Host
from minidriver.scp11 import SCP11Host, SCP11Params
from minidriver.scpbase import StaticKeys

h = bytes.fromhex
SELECT_ISD = h("00A4040008A000000151000000")
TEST_KEY = bytes(range(0x40, 0x50))


def make_card(**isd: object) -> VirtualCard:
    raw = resources.files("emulator.profiles").joinpath("default.toml").read_bytes()
    data = copy.deepcopy(tomllib.loads(raw.decode()))
    data["isd"].update(isd)
    card = build_card(Profile.from_dict(data, source="test.toml", state_dir=Path("/nonexistent")), MemoryStore())
    assert transmit(card, SELECT_ISD).sw == 0x9000
    return card


class SCP03Admin:
    """The issuer: SCP03 with the factory test keys, level 33."""

    def __init__(self, card: VirtualCard) -> None:
        self.card = card
        self.host = SCP03Host(StaticKeys.same(TEST_KEY, kvn=0xFF))
        iu = transmit(card, self.host.initialize_update_apdu(0))
        self.host.process_initialize_update_response(iu.data)
        assert transmit(card, self.host.external_authenticate_apdu(0x33)).sw == 0x9000

    def send(self, cmd: HostCommand | bytes) -> ResponseAPDU:
        raw = cmd if isinstance(cmd, bytes) else bytes(cmd)
        return ResponseAPDU.from_bytes(self.host.unwrap(self.card.transmit(self.host.wrap(raw))))

    def send_long(self, cmd: HostCommand) -> ResponseAPDU:
        data, last = cmd.data, None
        while len(data) > 200:
            last = self.send(HostCommand(cmd.cla | 0x10, cmd.ins, cmd.p1, cmd.p2, data[:200]))
            assert last.sw == 0x9000
            data = data[200:]
        return self.send(HostCommand(cmd.cla, cmd.ins, cmd.p1, cmd.p2, data, cmd.ne))


def card_scp11b_key(card: VirtualCard) -> ec.EllipticCurvePublicKey:
    resp = transmit(card, bytes(scp11_keys.get_certificates_command(0x13, 0x01)))
    assert resp.sw == 0x9000
    certs = [x509.load_der_x509_certificate(d) for d in scp11_keys.parse_certificates(resp.data)]
    public = certs[-1].public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return public


def provision_scp11a(card: VirtualCard, chain: Chain, *, kid: int = 0x11, kvn: int = 3) -> ec.EllipticCurvePublicKey:
    admin = SCP03Admin(card)
    resp = admin.send(scp11_keys.generate_key_command(kid, kvn))
    assert resp.sw == 0x9000
    assert admin.send(scp11_keys.put_ec_key_command(0x10, kvn, chain.ca_key.public_key())).data == bytes((kvn,))
    assert admin.send(scp11_keys.store_ca_issuer_command(0x10, kvn, chain.ca_ski)).sw == 0x9000
    assert transmit(card, SELECT_ISD).sw == 0x9000
    return scp11_keys.parse_generated_key(resp.data)


# -- primitives ----------------------------------------------------------------------------------
def test_session_key_derivation_is_ansi_x963_sha256() -> None:
    # NIST CAVP ANSI X9.63 KDF vector (SHA-256, 128-byte output), also in pyca/cryptography's tests;
    # the shared secret split in two as ShSee || ShSes
    z = h("22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d")
    keys = derive_session_keys(z[:12], z[12:], h("75eef81aa3041e33b80971203d2c0c52"), 16)
    assert (
        b"".join(keys)
        == h(
            "c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e"
            "52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf92f30d0097111485"
            "500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269"
            "142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21"
        )[:80]
    )


# -- SCP11b -------------------------------------------------------------------------------------
def test_default_card_offers_scp11b_and_yubikit_verifies_the_receipt() -> None:
    card = make_card()

    def send(cla: int, ins: int, p1: int, p2: int, data: bytes) -> bytes:
        resp = transmit(card, bytes([cla, ins, p1, p2, len(data)]) + data)
        assert resp.sw == 0x9000, f"{resp.sw:04X}"
        return resp.data

    state = ScpState.scp11_init(send, Scp11KeyParams(KeyRef(0x13, 0x01), card_scp11b_key(card)))
    # GET DATA CF (key derivation data) wrapped as yubikit's ScpProcessor does: encrypt, then MAC
    enc = state.encrypt(b"")
    apdu = bytes([0x84, 0xCA, 0x00, 0xCF, len(enc) + 8]) + enc
    wire = apdu + state.mac(apdu)
    resp = ResponseAPDU.from_bytes(card.transmit(wire))
    assert resp.sw == 0x9000
    assert state.decrypt(state.unmac(resp.data, resp.sw)) == h("CF0A") + bytes(10)


def test_scp11b_pair_wraps_and_grants_no_management() -> None:
    card = make_card()
    host, resp = run_handshake(card, SCP11Params(kid=0x13, kvn=0x01, pk_sd=card_scp11b_key(card)))
    assert resp.sw == 0x9000 and host.level == 0x33
    got = send_wrapped(card, host, h("80CA00CF00"))
    assert (got.sw, got.data) == (0x9000, h("CF0A") + bytes(10))
    # the OCE is not authenticated: card management is refused (as yubikit's device test expects)
    assert send_wrapped(card, host, bytes(scp11_keys.generate_key_command(0x13, 0x7F))).sw == 0x6982


def test_wrong_card_key_fails_the_receipt_check() -> None:
    card = make_card()
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    host = None
    with pytest.raises(Exception, match="receipt"):
        host, _ = run_handshake(card, SCP11Params(kid=0x13, kvn=0x01, pk_sd=other))
    assert host is None


def test_flipped_bit_in_a_wrapped_command_closes_the_session() -> None:
    card = make_card()
    host, _ = run_handshake(card, SCP11Params(kid=0x13, kvn=0x01, pk_sd=card_scp11b_key(card)))
    wire = bytearray(host.wrap(h("80CA00CF00")))
    wire[-2] ^= 0x01
    assert ResponseAPDU.from_bytes(card.transmit(bytes(wire))).sw == 0x6982
    again = SCP11Params(kid=0x13, kvn=0x01, pk_sd=card_scp11b_key(card))
    host2, resp = run_handshake(card, again)  # a fresh handshake works again
    assert resp.sw == 0x9000 and send_wrapped(card, host2, h("80CA00CF00")).sw == 0x9000


def test_scp11b_refuses_unknown_key_and_wrong_parameters() -> None:
    card = make_card()
    pk = card_scp11b_key(card)
    _, resp = run_handshake(card, SCP11Params(kid=0x13, kvn=0x02, pk_sd=pk))
    assert resp.sw == 0x6A88
    # parameters byte of tag 90 says SCP11a while P2 names the SCP11b key
    apdu = bytearray(SCP11HostFor(pk).authenticate_apdu())
    assert apdu[5:10] == h("A60D900211")
    apdu[10] = 0x01
    assert transmit(card, bytes(apdu)).sw == 0x6A80


def SCP11HostFor(pk: ec.EllipticCurvePublicKey, *, channel: int = 0) -> SCP11Host:  # noqa: N802 - builds one
    return SCP11Host(SCP11Params(kid=0x13, kvn=0x01, pk_sd=pk), channel=channel)


def test_card_without_scp11b_kvn_has_no_scp11_key() -> None:
    card = make_card(scp11b_kvn=0)
    assert transmit(card, bytes(scp11_keys.get_certificates_command(0x13, 0x01))).sw == 0x6A88
    e0 = transmit(card, h("80CA00E000")).data
    assert b"\x13\x01" not in e0


# -- SCP11a / SCP11c ------------------------------------------------------------------------------
def test_scp11a_with_certificate_chain_authenticates_the_oce() -> None:
    card = make_card()
    chain = make_chain()
    pk = provision_scp11a(card, chain)
    params = SCP11Params(
        kid=0x11, kvn=3, pk_sd=pk, sk_oce=chain.oce_key, certificates=chain.ders, oce_kid=0x10, oce_kvn=3
    )
    host, resp = run_handshake(card, params)
    assert resp.sw == 0x9000
    # management allowed: the OCE is authenticated (GENERATE KEY, then DELETE by KID+KVN)
    assert send_wrapped(card, host, bytes(scp11_keys.generate_key_command(0x13, 0x7F))).sw == 0x9000
    assert send_wrapped(card, host, bytes(scp11_keys.delete_key_command(kid=0x13, kvn=0x7F))).sw == 0x9000


def test_scp11c_is_mutual_but_carries_no_management_rights() -> None:
    card = make_card()
    chain = make_chain()
    pk = provision_scp11a(card, chain, kid=0x15)
    params = SCP11Params(kid=0x15, kvn=3, pk_sd=pk, sk_oce=chain.oce_key, certificates=chain.ders, oce_kvn=3)
    host, resp = run_handshake(card, params)
    assert resp.sw == 0x9000
    assert send_wrapped(card, host, h("80CA00CF00")).sw == 0x9000
    assert send_wrapped(card, host, bytes(scp11_keys.delete_key_command(kvn=3))).sw == 0x6982


def test_certificate_from_another_ca_is_refused() -> None:
    card = make_card()
    trusted, rogue = make_chain(), make_chain()
    pk = provision_scp11a(card, trusted)
    params = SCP11Params(kid=0x11, kvn=3, pk_sd=pk, sk_oce=rogue.oce_key, certificates=rogue.ders, oce_kvn=3)
    _, resp = run_handshake(card, params)
    assert resp.sw == 0x6982
    # and MUTUAL AUTHENTICATE without a verified chain is refused
    assert transmit(card, SCP11Host(params).authenticate_apdu()).sw == 0x6985


def test_oce_key_not_matching_its_certificate_fails_the_receipt() -> None:
    card = make_card()
    chain = make_chain()
    pk = provision_scp11a(card, chain)
    wrong = ec.generate_private_key(ec.SECP256R1())
    params = SCP11Params(kid=0x11, kvn=3, pk_sd=pk, sk_oce=wrong, certificates=chain.ders, oce_kvn=3)
    with pytest.raises(Exception, match="receipt"):
        run_handshake(card, params)


def test_allow_list_refuses_other_serials_and_accepts_listed() -> None:
    card = make_card()
    chain = make_chain(serial=0x7777)
    pk = provision_scp11a(card, chain)
    admin = SCP03Admin(card)
    assert admin.send(scp11_keys.store_allow_list_command(0x10, 3, [1, 2, 3])).sw == 0x9000
    assert transmit(card, SELECT_ISD).sw == 0x9000
    params = SCP11Params(kid=0x11, kvn=3, pk_sd=pk, sk_oce=chain.oce_key, certificates=chain.ders, oce_kvn=3)
    _, resp = run_handshake(card, params)
    assert resp.sw == 0x6982
    admin = SCP03Admin(card)
    assert admin.send(scp11_keys.store_allow_list_command(0x10, 3, [0x7777, 0x80])).sw == 0x9000
    assert transmit(card, SELECT_ISD).sw == 0x9000
    _, resp = run_handshake(card, params)
    assert resp.sw == 0x9000


def test_certificates_and_ca_identifiers_are_stored_and_read_back() -> None:
    card = make_card()
    chain = make_chain()
    provision_scp11a(card, chain)
    admin = SCP03Admin(card)
    ders = list(chain.ders)
    assert admin.send_long(scp11_keys.store_certificates_command(0x11, 3, ders)).sw == 0x9000
    assert transmit(card, SELECT_ISD).sw == 0x9000
    resp = transmit(card, bytes(scp11_keys.get_certificates_command(0x11, 3)))
    assert scp11_keys.parse_certificates(resp.data) == ders
    kloc = transmit(card, h("80CAFF3300"))
    assert Tlv.parse_list(kloc.data)[0].value == chain.ca_ski
    assert Tlv.parse_list(kloc.data)[1].value == h("1003")
    assert transmit(card, h("80CAFF3400")).sw == 0x6A88  # no KLCC identifiers


def test_put_key_imports_an_scp11b_key_pair_under_scp03() -> None:
    card = make_card()
    admin = SCP03Admin(card)
    sk = ec.generate_private_key(ec.SECP256R1())
    cmd = scp11_keys.put_ec_key_command(0x13, 0x02, sk, encrypt=admin.host.dek_encrypt)
    assert admin.send(cmd).data == b"\x02"
    assert transmit(card, SELECT_ISD).sw == 0x9000
    host, resp = run_handshake(card, SCP11Params(kid=0x13, kvn=0x02, pk_sd=sk.public_key()))
    assert resp.sw == 0x9000
    e0 = send_wrapped(card, host, h("80CA00E000")).data
    assert h("C0041302B120") in e0


def test_put_key_with_wrong_dek_does_not_yield_the_key() -> None:
    card = make_card()
    admin = SCP03Admin(card)
    sk = ec.generate_private_key(ec.SECP256R1())
    cmd = scp11_keys.put_ec_key_command(0x13, 0x02, sk, dek=bytes(16))  # not the card's DEK
    resp = admin.send(cmd)
    if resp.sw == 0x9000:  # a random scalar may still be a valid key: then it is not ours
        assert transmit(card, SELECT_ISD).sw == 0x9000
        with pytest.raises(Exception, match="receipt"):
            run_handshake(card, SCP11Params(kid=0x13, kvn=0x02, pk_sd=sk.public_key()))
    else:
        assert resp.sw == 0x6A80


def test_pso_without_ca_key_and_chain_state_survive_nothing() -> None:
    card = make_card()
    chain = make_chain()
    cmd = HostCommand(0x80, 0x2A, 0x03, 0x90, chain.ders[0])
    assert send_chained(card, cmd).sw == 0x6A88
    assert transmit(card, h("80 2A 03 20 03 01 02 03".replace(" ", ""))).sw == 0x6A88
    assert transmit(card, h("80 2A 03 05 00".replace(" ", ""))).sw == 0x6A86


# -- PIV over SCP11b ------------------------------------------------------------------------------
PIV_AID = h("A000000308")


def test_piv_is_usable_over_scp11b_without_issuer_rights() -> None:
    card = make_card()
    pk = card_scp11b_key(card)
    assert transmit(card, h("00A4040005") + PIV_AID).sw == 0x9000
    host, resp = run_handshake(card, SCP11Params(kid=0x13, kvn=0x01, pk_sd=pk))
    assert resp.sw == 0x9000
    assert send_wrapped(card, host, h("0020008008313233343536FFFF")).sw == 0x9000  # VERIFY PIN, encrypted
    assert send_wrapped(card, host, h("0020008000")).sw == 0x9000  # PIN verified in this session
    # GENERATE ASYMMETRIC KEY needs the management key: SCP11b (OCE unauthenticated) gives no issuer rights
    assert send_wrapped(card, host, h("0047009A05AC03800111")).sw == 0x6982
    # a plain command inside the session ends it
    assert transmit(card, h("0020008000")).sw == 0x6982


def test_scp11b_handshake_replaces_an_open_scp03_session() -> None:
    card = make_card()
    pk = card_scp11b_key(card)
    admin = SCP03Admin(card)  # level 33 session on channel 0
    host, resp = run_handshake(card, SCP11Params(kid=0x13, kvn=0x01, pk_sd=pk))  # plain, as INITIALIZE UPDATE
    assert resp.sw == 0x9000
    assert send_wrapped(card, host, h("80CA00CF00")).sw == 0x9000
    assert admin.send(h("80CA00CF00")).sw == 0x6982  # the SCP03 session is gone


def test_scp11_keys_persist_in_one_write_and_survive_a_restart() -> None:
    store = MemoryStore()
    raw = resources.files("emulator.profiles").joinpath("default.toml").read_bytes()
    profile = Profile.from_dict(tomllib.loads(raw.decode()), source="test.toml", state_dir=Path("/nonexistent"))
    card = build_card(profile, store)
    assert transmit(card, SELECT_ISD).sw == 0x9000
    admin = SCP03Admin(card)
    writes: list[dict[object, object]] = []
    original = store.write

    def recording(changes):  # type: ignore[no-untyped-def]
        writes.append(dict(changes))
        original(changes)

    store.write = recording  # type: ignore[method-assign]
    sk = ec.generate_private_key(ec.SECP256R1())
    assert admin.send(scp11_keys.put_ec_key_command(0x13, 0x05, sk, encrypt=admin.host.dek_encrypt)).sw == 0x9000
    assert [set(w) for w in writes] == [{("isd", "scp11")}]  # the key in one transaction (tear-safe)
    assert sk.private_numbers().private_value.to_bytes(32, "big").hex() in store.get("isd", "scp11").decode()
    store.write = original  # type: ignore[method-assign]

    restarted = build_card(profile, store)  # same state file: a daemon restart
    assert transmit(restarted, SELECT_ISD).sw == 0x9000
    host, resp = run_handshake(restarted, SCP11Params(kid=0x13, kvn=0x05, pk_sd=sk.public_key()))
    assert resp.sw == 0x9000 and send_wrapped(restarted, host, h("80CA00CF00")).sw == 0x9000


def test_scp11b_on_a_logical_channel() -> None:
    card = make_card()
    pk = card_scp11b_key(card)
    opened = transmit(card, h("0070000001"))
    assert opened.sw == 0x9000 and opened.data == b"\x01"
    assert transmit(card, h("01A4040008A000000151000000")).sw == 0x9000
    host = SCP11HostFor(pk, channel=1)
    resp = transmit(card, host.authenticate_apdu())
    assert resp.sw == 0x9000
    host.process_authenticate_response(resp.data)
    assert send_wrapped(card, host, h("81CA00CF00")).data == h("CF0A") + bytes(10)
    assert transmit(card, h("80CA00CF00")).sw == 0x9000  # the basic channel stays plain


def test_a_leaf_certificate_cannot_issue_the_next_one() -> None:
    card = make_card()
    chain = make_chain()
    pk = provision_scp11a(card, chain)
    # the OCE certificate (CA:FALSE) used to sign one more: correctly signed, but not allowed to issue
    key, extra = issue_leaf(chain.oce_key, "Example OCE Certificate")
    ders = (*chain.ders, extra)
    params = SCP11Params(kid=0x11, kvn=3, pk_sd=pk, sk_oce=key, certificates=ders, oce_kvn=3)
    _, resp = run_handshake(card, params)
    assert resp.sw == 0x6982


def test_host_and_card_identifiers_are_refused() -> None:
    card = make_card()
    apdu = bytearray(SCP11HostFor(card_scp11b_key(card)).authenticate_apdu())
    # A6 0D ... -> A6 10 ... 84 01 AA (host ID) inserted at the end of the template
    body = bytes(apdu[7:20]) + bytes.fromhex("8401AA")
    rest = bytes(apdu[20:-1])
    data = bytes((0xA6, len(body))) + body + rest
    assert transmit(card, bytes(apdu[:4]) + bytes((len(data),)) + data + b"\x00").sw == 0x6A80
