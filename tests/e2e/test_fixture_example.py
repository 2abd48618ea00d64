"""The README's example test: how does an application cope with a card that misbehaves?"""

import contextlib
from typing import Any

import pytest
from smartcard.Exceptions import CardConnectionException

from emulator.pytest_plugin import LiveCard
from emulator.trace import ApduEvent, FaultEvent

SELECT_PIV = bytes.fromhex("00A4040009A00000030800001000")
VERIFY = bytes.fromhex("0020008008") + b"123456\xff\xff"  # the test profile's PIN
PIN_TRIES = bytes.fromhex("0020008000")  # VERIFY without data: 63Cx, x tries left


def send(conn: Any, apdu: bytes) -> int:
    _, sw1, sw2 = conn.transmit(list(apdu))
    return sw1 << 8 | sw2


@pytest.mark.vcard(profile="yubikey-5.7")  # the card to test with; a fresh one for each test
def test_a_refused_pin_then_a_card_pulled_mid_command(vcard: LiveCard) -> None:
    conn = vcard.connect()  # pyscard, through the real pcscd
    assert send(conn, SELECT_PIV) == 0x9000

    vcard.fault("sw", ins=0x20, sw=0x6F00)  # the next VERIFY gets 6F00 instead of the card's answer
    assert send(conn, VERIFY) == 0x6F00

    vcard.fault("tear", ins=0x20)  # the next VERIFY pulls the card before it runs
    with pytest.raises(CardConnectionException):
        send(conn, VERIFY)
    with contextlib.suppress(Exception):
        conn.release()

    events = vcard.trace()  # what crossed the wire in this test, secrets redacted
    refused = [e for e in events if isinstance(e, ApduEvent) and e.ins == 0x20 and e.fault]
    assert refused and refused[0].sw == 0x6F00 and refused[0].command_data is None  # no PIN in a trace
    assert [e.kind for e in events if isinstance(e, FaultEvent)] == ["sw", "tear"]

    vcard.insert(wait=True)  # put the card back: neither VERIFY reached it, no try was spent
    conn = vcard.connect()
    assert send(conn, SELECT_PIV) == 0x9000
    assert send(conn, PIN_TRIES) == 0x63C3
    assert send(conn, VERIFY) == 0x9000
    conn.release()
