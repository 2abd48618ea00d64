"""An example of *your* test suite using vcard's pytest plugin (installed with vcard).

The `vcard` fixture gives each test a fresh card from the default profile in a real reader of a
private pcscd; `vcard.env` points PC/SC programs at that pcscd. examples/ci/ runs this suite in
GitHub Actions and GitLab CI; tests/containers/test_ci_recipes.py runs the same steps in a clean
debian:12 container.
"""

import subprocess

from smartcard.Exceptions import CardConnectionException, NoCardException

PIV_AID = "A000000308000010000100"


def test_the_card_answers_select_piv(vcard):
    answer = vcard.transmit("00A40400" + "0B" + PIV_AID + "00")
    assert answer[-2:] == b"\x90\x00"
    assert bytes.fromhex(PIV_AID)[:5] in answer  # the application property template names PIV


def test_my_application_survives_a_card_pull(vcard):
    conn = vcard.connect()
    vcard.remove(wait=True)
    try:
        conn.transmit(list(bytes.fromhex("00A40400" + "0B" + PIV_AID + "00")))
        raise AssertionError("a pulled card answered")
    except (CardConnectionException, NoCardException):
        pass  # what your application must handle
    finally:
        conn.release()
    vcard.insert(wait=True)
    assert vcard.transmit("00A40400" + "0B" + PIV_AID + "00")[-2:] == b"\x90\x00"


def test_other_pcsc_programs_see_the_same_card(vcard):
    # pcsc-tools' pcsc_scan, through the test pcscd (vcard.env sets PCSCLITE_CSOCK_NAME)
    out = subprocess.run(["pcsc_scan", "-c", "-t", "1"], env=vcard.env, capture_output=True, text=True, timeout=30)
    assert vcard.reader in out.stdout and "Card inserted" in out.stdout
