"""Host side of SCP11 (minidriver/scp11.py, scp11_keys.py), sans-I/O and without the card side.

The card's half of the key agreement is written here from Amendment F's
formulas with pyca primitives (X963KDF, CMAC), as an oracle independent of
both emulator/gp/scp11.py and minidriver's own X9.63 code.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import cmac, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from minidriver import scp11_keys
from minidriver.iso7816 import parse_tlvs
from minidriver.scp11 import SCP11Host, SCP11Params, x963_kdf
from minidriver.scpbase import AuthenticationError, ChannelState, IntegrityError, SCPError, SCPStateError

h = bytes.fromhex
# fixed scalars: the handshake below is a known-answer test
SK_SD = ec.derive_private_key(0x1111111111111111111111111111111111111111111111111111111111111111, ec.SECP256R1())
ESK_SD = ec.derive_private_key(0x2222222222222222222222222222222222222222222222222222222222222222, ec.SECP256R1())
ESK_OCE = ec.derive_private_key(0x3333333333333333333333333333333333333333333333333333333333333333, ec.SECP256R1())
SK_OCE = ec.derive_private_key(0x4444444444444444444444444444444444444444444444444444444444444444, ec.SECP256R1())


def point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def card_answer(request: bytes, *, pk_oce: ec.EllipticCurvePublicKey) -> tuple[bytes, list[bytes]]:
    """The card's 5F49 || 86 answer and the five keys, from Amd F's formulas."""
    epk_oce = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), request[-65:])
    secret = ESK_SD.exchange(ec.ECDH(), epk_oce) + SK_SD.exchange(ec.ECDH(), pk_oce)
    material = X963KDF(hashes.SHA256(), 80, h("3C8810")).derive(secret)
    keys = [material[i : i + 16] for i in range(0, 80, 16)]
    epk_tlv = h("5F4941") + point(ESK_SD.public_key())
    mac = cmac.CMAC(algorithms.AES(keys[0]))
    mac.update(request + epk_tlv)
    return epk_tlv + h("8610") + mac.finalize(), keys


def scp11b_host() -> SCP11Host:
    return SCP11Host(SCP11Params(kid=0x13, kvn=0x01, pk_sd=SK_SD.public_key()), ephemeral=lambda: ESK_OCE)


def test_x963_kdf_matches_nist_cavp_vectors() -> None:
    # NIST CAVP ANSI X9.63 KDF (SHA-256) vectors, as in pyca/cryptography's tests
    assert x963_kdf(h("96c05619d56c328ab95fe84b18264b08725b85e33fd34f08"), b"", 16) == h(
        "443024c3dae66b95e6f5670601558f71"
    )
    z, info = h("22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d"), h("75eef81aa3041e33b80971203d2c0c52")
    assert x963_kdf(z, info, 128) == h(
        "c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e"
        "52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf92f30d0097111485"
        "500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269"
        "142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21"
    )


def test_scp11b_authenticate_apdu_layout() -> None:
    apdu = scp11b_host().authenticate_apdu()
    # 80 88 KVN KID Lc  A6 0D {90 02 11 00, 95 01 3C, 80 01 88, 81 01 10}  5F49 41 ePK.OCE  Le
    assert apdu[:5] == h("8088011353")
    assert apdu[5:20] == h("A60D9002110095013C800188810110")
    assert apdu[20:23] == h("5F4941") and apdu[23:88] == point(ESK_OCE.public_key()) and apdu[-1] == 0x00


def test_scp11b_handshake_known_answer_and_wrapping() -> None:
    host = scp11b_host()
    apdu = host.authenticate_apdu()
    request = apdu[5:-1]
    answer, keys = card_answer(request, pk_oce=ESK_OCE.public_key())
    host.process_authenticate_response(answer)
    assert host.state is ChannelState.OPEN and host.level == 0x33
    # the first command: C-DECRYPTION with counter 1, C-MAC chained from the receipt (SCP03 rules)
    wire = host.wrap(h("80CA00CF00"))
    assert wire[:5] == h("84CA00CF08")  # no data: nothing to encrypt, Lc = MAC
    receipt = answer[-16:]
    mac = cmac.CMAC(algorithms.AES(keys[2]))
    mac.update(receipt + h("84CA00CF08"))
    chain = mac.finalize()
    assert wire[5:13] == chain[:8]
    # the card's answer: R-ENC with ICV E(S-ENC, 80 || counter), then R-MAC over chain || data || SW
    icv_enc = Cipher(algorithms.AES(keys[1]), modes.ECB()).encryptor()
    icv = icv_enc.update(h("80") + (1).to_bytes(15, "big")) + icv_enc.finalize()
    body_enc = Cipher(algorithms.AES(keys[1]), modes.CBC(icv)).encryptor()
    body = body_enc.update(h("CF0A00000000000000000000") + h("80000000")) + body_enc.finalize()
    rmac = cmac.CMAC(algorithms.AES(keys[3]))
    rmac.update(chain + body + h("9000"))
    assert host.unwrap(body + rmac.finalize()[:8] + h("9000")) == h("CF0A00000000000000000000") + h("9000")


def test_wrong_receipt_closes_the_channel() -> None:
    host = scp11b_host()
    request = host.authenticate_apdu()[5:-1]
    answer, _ = card_answer(request, pk_oce=ESK_OCE.public_key())
    bad = bytearray(answer)
    bad[-1] ^= 0x01
    with pytest.raises(AuthenticationError, match="receipt"):
        host.process_authenticate_response(bytes(bad))
    assert host.state is ChannelState.CLOSED
    with pytest.raises(SCPStateError):
        host.wrap(h("80CA00CF00"))


def test_flipped_rmac_is_an_integrity_error() -> None:
    host = scp11b_host()
    answer, _ = card_answer(host.authenticate_apdu()[5:-1], pk_oce=ESK_OCE.public_key())
    host.process_authenticate_response(answer)
    host.wrap(h("80CA00CF00"))
    with pytest.raises(IntegrityError):
        host.unwrap(bytes(16) + bytes(8) + h("9000"))
    assert host.state is ChannelState.CLOSED


def test_malformed_answers_are_refused() -> None:
    for answer in (b"", h("8610") + bytes(16), h("5F4903040102") + h("8610") + bytes(16)):
        host = scp11b_host()
        host.authenticate_apdu()
        with pytest.raises(SCPError):
            host.process_authenticate_response(answer)
        assert host.state is ChannelState.CLOSED


def test_scp11a_uses_the_static_oce_key_and_sends_certificates_leaf_last() -> None:
    params = SCP11Params(
        kid=0x11, kvn=3, pk_sd=SK_SD.public_key(), sk_oce=SK_OCE, certificates=(b"A", b"B", b"C"), oce_kvn=3
    )
    host = SCP11Host(params, ephemeral=lambda: ESK_OCE)
    cmds = host.certificate_commands()
    assert [(c.ins, c.p1, c.p2, c.data) for c in cmds] == [
        (0x2A, 3, 0x90, b"A"),
        (0x2A, 3, 0x90, b"B"),
        (0x2A, 3, 0x10, b"C"),
    ]
    apdu = host.authenticate_apdu()
    assert apdu[:4] == h("80820311") and apdu[7:11] == h("90021101")
    answer, _ = card_answer(apdu[5:-1], pk_oce=SK_OCE.public_key())
    host.process_authenticate_response(answer)
    assert host.state is ChannelState.OPEN
    # SCP11b's formula (ePK.OCE twice) would not match: the static key matters
    host2 = SCP11Host(params, ephemeral=lambda: ESK_OCE)
    wrong, _ = card_answer(host2.authenticate_apdu()[5:-1], pk_oce=ESK_OCE.public_key())
    with pytest.raises(AuthenticationError):
        host2.process_authenticate_response(wrong)


def test_scp03_handshake_calls_are_refused_and_params_checked() -> None:
    host = scp11b_host()
    with pytest.raises(SCPStateError):
        host.initialize_update_apdu()
    with pytest.raises(SCPStateError):
        host.external_authenticate_apdu(0x33)
    with pytest.raises(SCPStateError):
        host.process_authenticate_response(b"")
    with pytest.raises(ValueError):
        SCP11Params(kid=0x01, kvn=1, pk_sd=SK_SD.public_key())
    with pytest.raises(ValueError, match="needs sk_oce"):
        SCP11Params(kid=0x11, kvn=1, pk_sd=SK_SD.public_key())
    with pytest.raises(ValueError, match="no OCE key"):
        SCP11Params(kid=0x13, kvn=1, pk_sd=SK_SD.public_key(), sk_oce=SK_OCE)


def test_key_management_commands() -> None:
    dek = bytes(range(16))
    put = scp11_keys.put_ec_key_command(0x13, 0x02, SK_SD, dek=dek)
    assert (put.cla, put.ins, put.p1, put.p2) == (0x80, 0xD8, 0x00, 0x13)
    assert put.data[:3] == h("02B120") and put.data[-4:] == h("F0010000")
    decrypt = Cipher(algorithms.AES(dek), modes.CBC(bytes(16))).decryptor()
    assert decrypt.update(put.data[3:35]) + decrypt.finalize() == b"\x11" * 32
    pub = scp11_keys.put_ec_key_command(0x10, 0x03, SK_OCE.public_key(), replace_kvn=0x02)
    assert pub.p1 == 0x02 and pub.data[:3] == h("03B041") and pub.data[3:68] == point(SK_OCE.public_key())
    with pytest.raises(ValueError):
        scp11_keys.put_ec_key_command(0x10, 0x03, SK_OCE, dek=dek)  # a private key for a CA slot
    with pytest.raises(ValueError):
        scp11_keys.put_ec_key_command(0x13, 0x03, ec.generate_private_key(ec.SECP384R1()), dek=dek)
    allow = scp11_keys.store_allow_list_command(0x10, 3, [1, 0x80])
    assert allow.data == h("A6048302100370") + h("07") + h("930101") + h("93020080")
    issuer = scp11_keys.store_ca_issuer_command(0x10, 3, h("AABB"))
    assert issuer.data == h("A60B800100") + h("4202AABB") + h("83021003")
    assert scp11_keys.delete_key_command(kvn=3).data == h("D20103")
    assert [bytes(t) for t in parse_tlvs(scp11_keys.get_certificates_command(0x13, 1).data)] == [h("A60483021301")]
