"""PUT KEY / DELETE key through pcscd: rotate the factory keys, then only the new ones work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gp_e2e import SCP02_KVN, TEST_KEYS, connected, insert_profile, open_session, plain, write_scp02_profile

from emulator.pytest_plugin import LiveCard
from minidriver.gp import HOST_ERRORS
from minidriver.iso7816 import ApduError
from minidriver.pcsc import PcscConnection
from minidriver.scp import StaticKeys
from minidriver.scpbase import AuthenticationError

pytestmark = pytest.mark.e2e


def fresh_keys(kvn: int, length: int = 16) -> StaticKeys:
    return StaticKeys(kvn=kvn, enc=os.urandom(length), mac=os.urandom(length), dek=os.urandom(length))


def key_versions(transport: PcscConnection, keys: StaticKeys) -> set[int]:
    session = open_session(transport, keys=keys, kvn=keys.kvn)
    try:
        return {k.kvn for k in session.key_information() if k.kid < 0x10}
    finally:
        session.close()


@pytest.mark.parametrize("length", [16, 24, 32])
def test_put_key_rotates_factory_keys(vcard: LiveCard, length: int) -> None:
    new = fresh_keys(0x01, length)
    with connected(vcard) as transport:
        session = open_session(transport, level=0x33)
        session.put_key(new)
        session.close()

        # the new key set opens a channel at every level; the factory set is gone
        for level in (0x01, 0x33):
            session = open_session(transport, keys=new, kvn=0x01, level=level)
            assert {(k.kvn, k.length) for k in session.key_information() if k.kid < 0x10} == {(0x01, length)}
            session.close()

        with pytest.raises(ApduError) as err:  # old KVN: no such key set
            open_session(transport, kvn=0xFF)
        assert err.value.sw == 0x6A88
        with pytest.raises(AuthenticationError, match="card cryptogram mismatch"):  # old keys, new set
            open_session(transport, kvn=0x01)


def test_old_keys_get_6300_from_the_card(vcard: LiveCard) -> None:
    """The card checks the host cryptogram too: one made from the old keys is refused with 6300."""
    with connected(vcard) as transport:
        session = open_session(transport)
        session.put_key(fresh_keys(0x01))
        session.close()
        assert plain(transport, "00A4040008A000000151000000")[1] == 0x9000
        assert plain(transport, "8050010008" + "02" * 8 + "00")[1] == 0x9000
        # what a host holding only the old keys can send: a cryptogram and MAC that do not verify
        assert plain(transport, "8482030010" + "5A" * 16)[1] == 0x6300


def test_put_key_replace_and_delete(vcard: LiveCard) -> None:
    first, second, extra = fresh_keys(0x01), fresh_keys(0x02), fresh_keys(0x03)
    with connected(vcard) as transport:
        session = open_session(transport)
        session.put_key(first)
        session.close()

        session = open_session(transport, keys=first, kvn=0x01)
        session.put_key(second, replace_kvn=0x01)
        session.close()
        assert key_versions(transport, second) == {0x02}
        with pytest.raises(HOST_ERRORS):
            open_session(transport, keys=first, kvn=0x01)

        session = open_session(transport, keys=second, kvn=0x02)
        session.put_key(extra)
        with pytest.raises(ApduError) as err:
            session.put_key(fresh_keys(0x04), replace_kvn=0x09)
        assert err.value.sw == 0x6A88
        assert {k.kvn for k in session.key_information() if k.kid < 0x10} == {0x02, 0x03}
        session.delete_key(0x03)
        assert {k.kvn for k in session.key_information() if k.kid < 0x10} == {0x02}
        with pytest.raises(ApduError) as err:
            session.delete_key(0x03)
        assert err.value.sw == 0x6A88
        with pytest.raises(ApduError) as err:  # the last key set stays
            session.delete_key(0x02)
        assert err.value.sw == 0x6985
        session.close()


def test_put_key_needs_a_mac_session(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        session = open_session(transport, level=0x00)
        with pytest.raises(ApduError) as err:
            session.put_key(fresh_keys(0x01))
        assert err.value.sw == 0x6982
        assert key_versions(transport, TEST_KEYS) == {0xFF}


def test_scp02_put_key_under_the_session_dek(vcard: LiveCard, tmp_path: Path) -> None:
    card = insert_profile(vcard, write_scp02_profile(tmp_path))
    new = fresh_keys(0x21)
    with connected(card) as transport:
        session = open_session(transport, kvn=SCP02_KVN, level=0x03)
        session.put_key(new)
        session.close()
        session = open_session(transport, keys=new, kvn=0x21, level=0x03)
        assert session.scp == 0x02
        assert {(k.kvn, k.key_type) for k in session.key_information() if k.kid < 0x10} == {
            (SCP02_KVN, 0x80),
            (0x21, 0x80),
        }
        session.close()
