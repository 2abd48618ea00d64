"""GET STATUS, life cycles, session end on removal and PIV over SCP03, through pcscd."""

from __future__ import annotations

import pytest
from gp_e2e import ISD_AID, PIV_AID, PIV_ELF_AID, connected, h, open_session, plain

from emulator.pytest_plugin import LiveCard
from minidriver.gp import GPSession
from minidriver.gpobjects import StatusScope
from minidriver.iso7816 import ApduError, CommandAPDU
from minidriver.pcsc import PcscConnection, PcscError

pytestmark = pytest.mark.e2e

PIV_MODULE_AID = h("A00000030800001000")
SELECT_PIV = "00A404000BA00000030800001000010000"
SELECT_ISD = "00A4040008A00000015100000000"


def test_get_status_lists_isd_piv_and_its_load_file(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        session = open_session(transport, level=0x33)
        (isd,) = session.get_status(StatusScope.ISD)
        assert (isd.aid, isd.state, isd.privileges) == (ISD_AID, "SECURED", h("9AFE80"))
        (piv,) = session.get_status(StatusScope.APPLICATIONS)
        assert (piv.aid, piv.state, piv.elf, piv.sd) == (PIV_AID, "SELECTABLE", PIV_ELF_AID, ISD_AID)
        (elf,) = session.get_status(StatusScope.LOAD_FILES_AND_MODULES)
        assert (elf.aid, elf.state, elf.modules) == (PIV_ELF_AID, "LOADED", (PIV_MODULE_AID,))
        assert session.get_status(StatusScope.APPLICATIONS, aid_prefix=h("A0000003")) == [piv]
        assert session.get_status(StatusScope.APPLICATIONS, aid_prefix=h("D276")) == []


def install_piv(session: GPSession, aid: bytes) -> int:
    """INSTALL [for install and make selectable] of another PIV instance (GPCS §11.5)."""
    fields = [PIV_ELF_AID, PIV_MODULE_AID, aid, b"\x00", h("C900"), b""]
    body = b"".join(bytes((len(f),)) + f for f in fields)
    return session.transceive(CommandAPDU(0x80, 0xE6, 0x0C, 0x00, body, 256)).sw


@pytest.mark.parametrize("level", [0x01, 0x33])
def test_get_status_pages_with_6310(vcard: LiveCard, level: int) -> None:
    """Seven instances do not fit one short response; the client follows 6310 with P2 03."""
    aids = [PIV_AID[:-1] + bytes((n,)) for n in range(0x10, 0x16)]
    with connected(vcard) as transport:
        session = open_session(transport, level=level)
        for aid in aids:
            assert install_piv(session, aid) == 0x9000
        first = session.transceive(CommandAPDU(0x80, 0xF2, StatusScope.APPLICATIONS, 0x02, h("4F00"), 256))
        assert first.sw == 0x6310 and first.data.startswith(b"\xe3")
        session.close()
        session = open_session(transport, level=level)
        listed = [e.aid for e in session.get_status(StatusScope.APPLICATIONS)]
        assert listed == [PIV_AID, *aids]
        # the new instances really are applications
        session.close()
        for aid in aids[:2]:
            assert plain(transport, bytes((0x00, 0xA4, 0x04, 0x00, len(aid))) + aid + b"\x00")[1] == 0x9000


def test_lock_and_unlock_an_application(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        session = open_session(transport)
        session.set_status(0x40, 0x80, PIV_AID)
        (piv,) = session.get_status(StatusScope.APPLICATIONS)
        assert piv.locked and piv.state == "LOCKED (SELECTABLE)"
        assert plain(transport, SELECT_PIV)[1] == 0x6A82

        session = open_session(transport)
        session.set_status(0x40, 0x00, PIV_AID)
        (piv,) = session.get_status(StatusScope.APPLICATIONS)
        assert piv.state == "SELECTABLE"
        assert plain(transport, SELECT_PIV)[1] == 0x9000


def test_card_lock_leaves_only_the_isd_selectable(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        session = open_session(transport)
        session.set_status(0x80, 0x7F)
        assert session.get_status(StatusScope.ISD)[0].state == "CARD_LOCKED"
        assert plain(transport, SELECT_PIV)[1] == 0x6A82
        assert plain(transport, SELECT_ISD)[1] == 0x6283

        session = open_session(transport)  # SELECT answers 6283; the ISD still opens a channel
        assert install_piv(session, PIV_AID[:-1] + b"\x20") == 0x6985  # content is frozen while locked
        with pytest.raises(ApduError) as err:  # SECURED -> TERMINATED is legal; LOCKED -> OP_READY is not
            session.set_status(0x80, 0x01)
        assert err.value.sw == 0x6985
        session.set_status(0x80, 0x0F)
        assert session.get_status(StatusScope.ISD)[0].state == "SECURED"
        assert plain(transport, SELECT_PIV)[1] == 0x9000


def test_card_lock_survives_removal(vcard: LiveCard) -> None:
    with connected(vcard) as transport:
        open_session(transport).set_status(0x80, 0x7F)
    vcard.remove(wait=True)
    vcard.insert(wait=True)
    with connected(vcard) as transport:
        assert plain(transport, SELECT_PIV)[1] == 0x6A82
        assert plain(transport, SELECT_ISD)[1] == 0x6283


def test_removal_ends_the_session(vcard: LiveCard) -> None:
    with PcscConnection(vcard.reader) as conn:
        session = open_session(conn, level=0x33)
        assert session.get_status(StatusScope.ISD)[0].state == "SECURED"
        vcard.remove(wait=True)
        vcard.insert(wait=True)
        with pytest.raises(PcscError) as err:  # the handle saw the card go
            session.get_status(StatusScope.ISD)
        assert err.value.card_gone, err.value
        conn.reconnect()
        # the host still holds its keys; the card does not
        assert session.transceive(CommandAPDU(0x80, 0xF2, 0x80, 0x02, h("4F00"), 256)).sw == 0x6982


@pytest.mark.parametrize("level", [0x01, 0x03, 0x13, 0x33])
def test_piv_over_scp03(vcard: LiveCard, level: int) -> None:
    with connected(vcard) as transport:
        assert plain(transport, SELECT_PIV)[1] == 0x9000
        session = open_session(transport, select=False, level=level, scp02_i=0x15)
        assert session.scp == 0x03
        assert session.transceive(CommandAPDU.parse(h("0020008008 313233343536FFFF"))).sw == 0x9000
        chuid = session.transceive(CommandAPDU.parse(h("00CB3FFF055C035FC102 00")))
        assert chuid.sw == 0x9000 and chuid.data[0] == 0x53
        # the 9A certificate is longer than a short response: 61xx + GET RESPONSE around the R-MAC
        cert = session.transceive(CommandAPDU.parse(h("00CB3FFF055C035FC105 00")))
        assert cert.sw == 0x9000 and cert.data[0] == 0x53 and len(cert.data) > 256
        # a plain command inside the C-MAC session is refused and ends it
        assert plain(transport, "00CB3FFF055C035FC10200")[1] == 0x6982
