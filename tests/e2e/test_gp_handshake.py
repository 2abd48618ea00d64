"""Secure channel handshakes through pcscd + vpcd + the daemon: SCP03 and SCP02, every level."""

from __future__ import annotations

from pathlib import Path

import pytest
from gp_e2e import SCP02_KVN, TEST_KEYS, connected, insert_profile, open_session, plain, write_scp02_profile

from emulator.pytest_plugin import LiveCard
from minidriver.gpobjects import StatusScope
from minidriver.iso7816 import ApduError
from minidriver.scpbase import AuthenticationError

pytestmark = pytest.mark.e2e

SCP03_LEVELS = [0x00, 0x01, 0x03, 0x11, 0x13, 0x33]
SCP02_LEVELS = [0x00, 0x01, 0x03]


def test_scp03_handshake_at_every_level(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        for level in SCP03_LEVELS:
            session = open_session(transport, level=level)
            assert (session.scp, session.kvn, session.level, session.i) == (0x03, 0xFF, level, 0x70)
            # a wrapped command is accepted (and, from 11 up, its R-MAC checked)
            entries = session.get_status(StatusScope.ISD)
            assert [e.state for e in entries] == ["SECURED"], f"level {level:02X}"
            session.close()


def test_scp03_default_level_is_the_strongest_the_card_offers(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        assert open_session(transport).level == 0x33


def test_scp02_handshake_at_every_level(vcard: LiveCard, tmp_path: Path) -> None:
    card = insert_profile(vcard, write_scp02_profile(tmp_path))
    with connected(card) as transport:
        for level in SCP02_LEVELS:
            session = open_session(transport, kvn=SCP02_KVN, level=level)
            assert (session.scp, session.kvn, session.level, session.i) == (0x02, SCP02_KVN, level, 0x15)
            keys = session.key_information()
            assert {(k.kvn, k.key_type) for k in keys if k.kid < 0x10} == {(0xFF, 0x88), (SCP02_KVN, 0x80)}
            session.close()


def test_scp02_refuses_rmac_levels(vcard: LiveCard, tmp_path: Path) -> None:
    card = insert_profile(vcard, write_scp02_profile(tmp_path))
    with connected(card) as transport, pytest.raises(ValueError, match="security level"):
        open_session(transport, kvn=SCP02_KVN, level=0x33)


def test_wrong_key_is_detected_by_the_host(vcard: LiveCard) -> None:
    wrong = type(TEST_KEYS).same(bytes(16), kvn=0xFF)
    with connected(vcard) as transport, pytest.raises(AuthenticationError, match="card cryptogram mismatch"):
        open_session(transport, keys=wrong)


def test_unknown_key_version_is_6a88(vcard: LiveCard) -> None:
    with connected(vcard) as transport, pytest.raises(ApduError) as err:
        open_session(transport, kvn=0x42)
    assert err.value.sw == 0x6A88


def test_wrapped_command_without_session_is_6982(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        assert plain(transport, "00A4040008A000000151000000")[1] == 0x9000
        # GET STATUS with CLA 84 and a made-up C-MAC, but no secure channel
        assert plain(transport, "84F280020A4F00" + "11" * 8 + "00")[1] == 0x6982


def test_bad_host_cryptogram_is_6300_and_ends_the_attempt(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        assert plain(transport, "00A4040008A000000151000000")[1] == 0x9000
        data, sw = plain(transport, "8050000008" + "01" * 8 + "00")
        assert sw == 0x9000 and data[11] == 0x03
        assert plain(transport, "8482330010" + "00" * 16)[1] == 0x6300
        # the pending session is gone: EXTERNAL AUTHENTICATE again has nothing to finish
        assert plain(transport, "8482330010" + "00" * 16)[1] in (0x6985, 0x6982)
