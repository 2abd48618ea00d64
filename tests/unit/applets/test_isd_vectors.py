"""Published SCP vectors replayed against a whole VirtualCard (gp-scp.md §4.2, §4.3, §4.6).

The profile matches the card of the vector (keys, KVN, KDD, i, life cycle) and
the ISD's persisted sequence counter is set one below the published value, so
the card's next INITIALIZE UPDATE uses exactly that counter.
"""

from __future__ import annotations

import pytest
from isd_helpers import DEFAULT_KEY, h, isd_of, make_card, make_profile, transmit

from emulator.card import VirtualCard

KAOH_KEYS = {
    "enc": "F995D0A069335C7DF42E590317FFEA6D",
    "mac": "58563362EC5A4541ABCD32B34B1EAE7D",
    "dek": "0A02A6D687406DCFA09DC70B3EDB7E38",
}


def preset_counter(card: VirtualCard, kvn: int, value: int) -> None:
    isd_of(card).store.put(f"seq/{kvn:02X}", value.to_bytes(4, "big"))


def keyset(kvn: int, scp: str = "03", **keys: str) -> dict[str, object]:
    key = DEFAULT_KEY.hex()
    return {
        "kvn": kvn,
        "scp": scp,
        "enc": keys.get("enc", key),
        "mac": keys.get("mac", key),
        "dek": keys.get("dek", key),
    }


def test_jcop4_dump_replays_byte_for_byte() -> None:
    profile = make_profile(applets=["isd"], kdd="00003244342976208448", life_cycle="OP_READY", keysets=[keyset(0x01)])
    card = make_card(profile)
    preset_counter(card, 0x01, 0x000435)
    assert transmit(card, "00A4040008A000000151000000").sw == 0x9000
    iu = transmit(card, "8050000008010203040506070800")
    assert bytes(iu) == h(
        "00003244342976208448 01 03 70 734ECDCA19E446A3 0BC253BCE97DB991 000436 9000".replace(" ", "")
    )
    assert transmit(card, "8482010010A5E66CD1A836E3A47CD3B3F7B689AE8F").sw == 0x9000
    status = transmit(card, "84F280020A4F009F2B339FA4DE0C2400")
    assert bytes(status) == h(
        "E3264F08A0000001510000009F700101C5039AFE80C407A0000001515350CC08A000000151000000 9000".replace(" ", "")
    )


@pytest.mark.parametrize(
    ("counter", "host", "cc_crypto", "ext_auth", "exchanges"),
    [
        pytest.param(
            0x15,
            "B2BDE1A2DC66BD56",
            "C40932A6FEFEAEB2E127185170F45FCA",
            "848203001059D54D932423D29F6313C970875F8C2F",
            [("84E400801829F06AEC3180B3EFE91FF662310B945DE0D5FE66AD67A5B6", 0x6A88)],
            id="delete_application-unknown-aid-keeps-session",
        ),
        pytest.param(
            0x85,
            "DA2390D378D94B0A",
            "A7EFE2BFDB3A27A6EAE3FF0EA0D17524",
            "8482030010953EEC5B4A81BF393ADC2ADFD638827A",
            [
                ("84F2200218705C4D16C7BAC5496AEE0ED9963222455472F3CFAC97BCCA00", 0x9000),
                ("84F240021834AF0FEDDAE7C07308600587E1B1E6EC87811520D9A6AAAD00", 0x9000),
                ("84F28002188D6CFE9EB359EACB9594D8EC161E45C10ED0138E34A10BF300", 0x9000),
                ("84F21002183D98B6DE9CBF3905EAE4FAF5E141C58DAB7013D1076745C700", 0x9000),
            ],
            id="get_status_enc_mac",
        ),
    ],
)
def test_kaoh_scp03_sessions_on_a_whole_card(counter, host, cc_crypto, ext_auth, exchanges) -> None:
    card = make_card(make_profile(keysets=[keyset(0x30, **KAOH_KEYS)]))
    preset_counter(card, 0x30, counter - 1)
    iu = transmit(card, f"8050000008{host}00")
    assert bytes(iu) == h(f"00000000000000000000300370{cc_crypto}{counter:06X}9000")
    assert transmit(card, ext_auth).sw == 0x9000
    for wrapped, sw in exchanges:
        assert transmit(card, wrapped).sw == sw


def test_get_status_reply_lists_the_isd_like_jcop4() -> None:
    card = make_card(make_profile(keysets=[keyset(0x30, **KAOH_KEYS)]))
    preset_counter(card, 0x30, 0x84)
    transmit(card, "8050000008DA2390D378D94B0A00")
    transmit(card, "8482030010953EEC5B4A81BF393ADC2ADFD638827A")
    transmit(card, "84F2200218705C4D16C7BAC5496AEE0ED9963222455472F3CFAC97BCCA00")
    transmit(card, "84F240021834AF0FEDDAE7C07308600587E1B1E6EC87811520D9A6AAAD00")
    resp = transmit(card, "84F28002188D6CFE9EB359EACB9594D8EC161E45C10ED0138E34A10BF300")
    assert resp.data == h("E3264F08A0000001510000009F70010FC5039AFE80C407A0000001515350CC08A000000151000000")


def test_oberthur_scp02_dump_on_a_whole_card() -> None:
    profile = make_profile(
        aid="A000000003000000", scp="02", i=0x15, kdd="00008147580F3D2988D8", keysets=[keyset(0xFF, "02")]
    )
    card = make_card(profile)
    preset_counter(card, 0xFF, 4)
    isd_of(card).service.random = lambda n: h("BD1A6BE9D3D5")
    iu = transmit(card, "8050000008796B87A024C3EF5700")
    assert bytes(iu) == h("00008147580F3D2988D8FF020005BD1A6BE9D3D575BD9E5774FB6A259000")
    assert transmit(card, "848201001095F3FA1D8578123B2A9DDB6C69EF918A").sw == 0x9000
    status = transmit(card, "84F280020A4F004ACBBBAD77F0346A00")
    assert status.sw == 0x9000
    assert status.data.startswith(h("E3")) and h("4F08A000000003000000") in status.data


def test_kaoh_scp02_get_status_mac_only_on_a_whole_card() -> None:
    profile = make_profile(scp="02", i=0x15, kdd="000074746E6E6E626262", keysets=[keyset(0x01, "02")])
    card = make_card(profile)
    preset_counter(card, 0x01, 0x069E)
    isd_of(card).service.random = lambda n: h("AA2A0591E733")
    iu = transmit(card, "8050000008D5AD539A60CA5E7200")
    assert bytes(iu) == h("000074746E6E6E6262620102069FAA2A0591E73367DD78794D04315E9000")
    assert transmit(card, "84820100107C799B3C771DBAE6BEF49310977617BA").sw == 0x9000
    assert transmit(card, "84F220020A4F00BB6E71C0EFCFCF0D00").sw == 0x9000
