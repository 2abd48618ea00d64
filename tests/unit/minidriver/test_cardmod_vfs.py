"""The virtual file system over the virtual card's PIV applet, in process (minidriver-spec.md §3.4, §6)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cardmod_support import acquired, card_data
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import NameOID
from incard import InProcessConnection

from minidriver.cardmod import (
    CardCreateFile,
    CardDeleteFile,
    CardEnumFiles,
    CardGetFileInfo,
    CardReadFile,
    CardWriteFile,
    Minidriver,
    Out,
    ScardCode,
)
from minidriver.cardmod.piv_map import parse_chuid
from minidriver.cardmod.structs import CardCacheFile, CardFileInfo, ContainerMapRecord
from minidriver.piv import ObjectId, PivSession

MGMT = bytes.fromhex("010203040506070801020304050607080102030405060708")


@pytest.fixture
def card() -> InProcessConnection:
    return InProcessConnection()


def md(card: InProcessConnection, **fields: Any) -> Minidriver:
    return Minidriver(card_data=card_data(card, **fields))


def read(cd: Any, directory: str | None, name: str) -> tuple[int, bytes]:
    data: Out[bytearray] = Out()
    size: Out[int] = Out()
    code = CardReadFile(cd, directory, name, 0, data, size)
    return code, bytes(data.value or b"")


def cert(ca: bool = False) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA" if ca else "leaf")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


def test_cardid_is_the_chuid_guid_and_names_come_from_it(card: InProcessConnection) -> None:
    identity = parse_chuid(PivSession(card).get_data(ObjectId.CHUID))
    with md(card) as m:
        assert m.card_id() == identity.guid
        records = m.containers()
    assert len(records) == 24
    assert records[0] == ContainerMapRecord("01" + identity.guid[1:].hex(), 0x03, 256, 0)
    assert all(r == ContainerMapRecord() for r in records[1:])


def test_certificate_file_is_the_slot_certificate(card: InProcessConnection) -> None:
    der = PivSession(card).get_certificate(0x9A)
    with md(card) as m:
        assert m.list_files("mscp") == ["cmapfile", "ksc00"]
        assert m.read_file("mscp/ksc00") == der
        assert m.list_files() == ["cardapps", "cardcf", "cardid"]
        assert m.read_file("cardapps") == b"mscp\0\0\0\0"
        info = m.file_info("mscp/ksc00")
        assert (info.cbFileSize, info.AccessCondition) == (len(der), 1)


def test_names_are_case_insensitive_and_at_most_8_characters(card: InProcessConnection) -> None:
    cd = acquired(card)
    assert read(cd, "MSCP", "CMAPFILE")[0] == 0
    assert read(cd, None, "cardidxyz")[0] == ScardCode.SCARD_E_INVALID_PARAMETER
    assert read(cd, "", "cardid")[0] == 0  # "" is the root, as NULL


class Cache:
    """pfnCspCacheAddFile / LookupFile / DeleteFile over a dict, recording the tags asked."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}
        self.asked: list[str] = []

    def add(self, ctx: Any, tag: str, flags: int, data: bytes) -> int:
        self.items[tag] = bytes(data)
        return 0

    def lookup(self, ctx: Any, tag: str, flags: int, out: Out[bytes]) -> int:
        self.asked.append(tag)
        if tag not in self.items:
            return ScardCode.SCARD_W_CACHE_ITEM_NOT_FOUND
        out.value = self.items[tag]
        return 0

    def delete(self, ctx: Any, tag: str, flags: int) -> int:
        self.items.pop(tag, None)
        return 0


def cached(card: InProcessConnection, cache: Cache) -> Any:
    return acquired(
        card,
        pfnCspCacheAddFile=cache.add,
        pfnCspCacheLookupFile=cache.lookup,
        pfnCspCacheDeleteFile=cache.delete,
        pvCacheContext="ctx",
    )


def test_cache_serves_a_second_context_and_never_holds_cardid_or_cardcf(card: InProcessConnection) -> None:
    cache = Cache()
    first = cached(card, cache)
    code, cmap = read(first, "mscp", "cmapfile")
    assert code == 0
    assert read(first, None, "cardid")[0] == read(first, None, "cardcf")[0] == 0
    assert not any(t.endswith(("/cardid", "/cardcf")) for t in cache.asked)
    assert any(t.endswith("mscp/cmapfile") for t in cache.items)
    second = cached(card, cache)
    before = len(card.sent)
    assert read(second, "mscp", "cmapfile") == (0, cmap)
    # a cache hit costs only the cardcf and CHUID reads, not 24 metadata + 24 certificate reads
    assert len(card.sent) - before <= 2


def test_cardcf_counts_changes_and_stale_cache_entries_are_not_used(card: InProcessConnection) -> None:
    cache = Cache()
    with Minidriver(card_data=cached(card, cache)) as m:
        assert m.read_file("mscp/cmapfile")
        before = CardCacheFile.from_bytes(m.read_file("cardcf"))
        m.authenticate_admin(MGMT)
        m.call("CardCreateFile", "mscp", "kxc02", 0, 1)
        new = cert()
        m.write_file("mscp/kxc02", new)
        after = CardCacheFile.from_bytes(m.read_file("cardcf"))
        assert after.wFilesFreshness == before.wFilesFreshness + 1
        assert after.wContainersFreshness == before.wContainersFreshness + 1
        # 9D has no key: the certificate is listed by what it says (EC, no keyUsage, 9D: key exchange)
        assert m.list_files("mscp") == ["cmapfile", "ksc00", "kxc02"]
        assert not m.containers()[2].bFlags
    # persisted on the card (vendor object): a new context sees the same counters and the new file
    with Minidriver(card_data=cached(card, cache)) as m:
        assert CardCacheFile.from_bytes(m.read_file("cardcf")) == after
        assert m.read_file("mscp/kxc02") == new


def test_another_context_changing_the_card_is_seen(card: InProcessConnection) -> None:
    with md(card) as watcher, md(card) as writer:
        assert watcher.list_files("mscp") == ["cmapfile", "ksc00"]
        writer.authenticate_admin(MGMT)
        writer.call("CardCreateFile", "mscp", "ksc05", 0, 1)
        writer.write_file("mscp/ksc05", cert())
        # watcher's model is dropped because cardcf moved
        assert watcher.list_files("mscp") == ["cmapfile", "ksc00", "kxc05"]
        assert watcher.read_file("cardcf") == writer.read_file("cardcf")


def test_writes_need_the_management_key(card: InProcessConnection) -> None:
    cd = acquired(card)
    assert CardWriteFile(cd, "mscp", "ksc00", 0, b"x", 1) == ScardCode.SCARD_W_SECURITY_VIOLATION
    assert CardWriteFile(cd, None, "cardcf", 0, bytes(6), 6) == ScardCode.SCARD_W_SECURITY_VIOLATION
    assert CardCreateFile(cd, "mscp", "kxc03", 0, 1) == ScardCode.SCARD_W_SECURITY_VIOLATION
    m = Minidriver(card_data=cd)
    m.authenticate_pin(b"123456")
    assert CardWriteFile(cd, "mscp", "ksc00", 0, b"x", 1) == ScardCode.SCARD_W_SECURITY_VIOLATION
    assert CardWriteFile(cd, None, "cardid", 0, bytes(range(16)), 16) == ScardCode.SCARD_W_SECURITY_VIOLATION
    # bookkeeping files take user writes; they stay in the context until an admin write
    assert CardWriteFile(cd, None, "cardcf", 0, bytes((1, 2, 3, 0, 4, 0)), 6) == 0
    assert read(cd, None, "cardcf") == (0, bytes((1, 2, 3, 0, 4, 0)))
    assert read(acquired(card), None, "cardcf")[1] != bytes((1, 2, 3, 0, 4, 0))
    assert CardCreateFile(cd, "mscp", "kxc02", 0, 1) == ScardCode.SCARD_W_SECURITY_VIOLATION
    assert CardCreateFile(cd, "mscp", "other", 0, 1) == ScardCode.SCARD_E_UNSUPPORTED_FEATURE
    m.authenticate_admin(MGMT)
    assert CardCreateFile(cd, "mscp", "kxc02", 0, 1) == 0
    assert CardCreateFile(cd, "mscp", "ksc00", 0, 1) == ScardCode.ERROR_FILE_EXISTS
    assert CardCreateFile(cd, "mscp", "kxc00", 0, 1) == ScardCode.ERROR_FILE_EXISTS  # the same object
    assert CardDeleteFile(cd, None, "cardid", 0) == ScardCode.SCARD_E_UNSUPPORTED_FEATURE


def test_cmapfile_names_written_by_the_caller_are_kept(card: InProcessConnection) -> None:
    with md(card) as m:
        records = m.containers()
        records[0] = ContainerMapRecord("{my-container}", 0x03, 0, 0)
        raw = b"".join(bytes(r) for r in records)
        m.authenticate_pin(b"123456")
        m.write_file("mscp/cmapfile", raw)
        assert m.containers()[0] == ContainerMapRecord("{my-container}", 0x03, 256, 0)
        assert md(card).containers()[0].wszGuid != "{my-container}"  # user write: this context only
        m.authenticate_admin(MGMT)
        m.write_file("mscp/cmapfile", raw)
    with md(card) as other:
        assert other.containers()[0].wszGuid == "{my-container}"
        # a record for an empty slot does not make a container
        assert other.containers()[1] == ContainerMapRecord()
    with pytest.raises(Exception, match="INVALID_PARAMETER"):
        m2 = md(card)
        m2.authenticate_pin(b"123456")
        m2.write_file("mscp/cmapfile", b"x" * 85)


def test_create_write_delete_certificate(card: InProcessConnection) -> None:
    piv = PivSession(card)
    piv.authenticate(MGMT)
    piv.generate_key(0x9D, 0x11)
    with md(card) as m:
        assert m.containers()[2].bFlags == 0x01
        assert "kxc02" not in m.list_files("mscp")
        m.authenticate_admin(MGMT)
        m.call("CardCreateFile", "mscp", "kxc02", 0, 1)
        assert m.read_file("mscp/kxc02") == b""
        der = cert()
        m.write_file("mscp/kxc02", der)
        assert m.read_file("mscp/kxc02") == der
        assert PivSession(card).get_certificate(0x9D) == der
    with md(card) as m:
        m.authenticate_admin(MGMT)
        m.call("CardDeleteFile", "mscp", "kxc02", 0)
        assert "kxc02" not in m.list_files("mscp")
        assert m.containers()[2].bFlags == 0x01  # the key stays


def test_msroots_holds_the_ca_certificates(card: InProcessConnection) -> None:
    ca = cert(ca=True)
    piv = PivSession(card)
    piv.authenticate(MGMT)
    piv.generate_key(0x82, 0x11)
    piv.put_certificate(0x82, ca)
    with md(card) as m:
        assert "msroots" in m.list_files("mscp")
        bag = pkcs7.load_der_pkcs7_certificates(m.read_file("mscp/msroots"))
        assert [c.public_bytes(Encoding.DER) for c in bag] == [ca]
        m.authenticate_admin(MGMT)
        with pytest.raises(Exception, match="UNSUPPORTED_FEATURE"):
            m.write_file("mscp/msroots", b"x")


def test_admin_write_of_cardid_replaces_the_chuid_guid(card: InProcessConnection) -> None:
    new = bytes(range(1, 17))
    with md(card) as m:
        m.authenticate_admin(MGMT)
        m.write_file("cardid", new)
        assert m.card_id() == new
        assert m.containers()[0].wszGuid == "01" + new[1:].hex()
    assert parse_chuid(PivSession(card).get_data(ObjectId.CHUID)).guid == new


def test_file_info_and_enum_rules(card: InProcessConnection) -> None:
    cd = acquired(card)
    info = CardFileInfo(dwVersion=0)
    assert CardGetFileInfo(cd, None, "cardcf", info) == 0
    assert (info.dwVersion, info.cbFileSize, info.AccessCondition) == (1, 6, 1)
    names: Out[bytearray] = Out(bytearray(b"junk"))
    assert CardEnumFiles(cd, "nodir", names, Out(), 0) == ScardCode.SCARD_E_DIR_NOT_FOUND
    assert names.value is None  # *pmszFileNames = NULL on failure


def test_removed_card_then_reinserted(card: InProcessConnection) -> None:
    cd = acquired(card)
    m = Minidriver(card_data=cd)
    m.authenticate_pin(b"123456")
    card_id = m.card_id()
    card.remove()
    assert read(cd, None, "cardid")[0] == ScardCode.SCARD_W_REMOVED_CARD
    assert read(cd, None, "cardid")[0] == ScardCode.SCARD_W_REMOVED_CARD
    card.insert()
    assert read(cd, None, "cardid") == (0, card_id)
    assert m.get_dword_property("Authenticated State") == 0  # the card forgot the PIN, so did we


def test_reset_card(card: InProcessConnection) -> None:
    cd = acquired(card)
    Minidriver(card_data=cd).authenticate_pin(b"123456")
    card.reset()
    assert read(cd, None, "cardid")[0] == ScardCode.SCARD_W_RESET_CARD
    assert read(cd, "mscp", "cmapfile")[0] == 0
    assert Minidriver(card_data=cd).get_dword_property("Authenticated State") == 0


def test_a_new_container_moves_the_container_counter(card: InProcessConnection) -> None:
    with md(card) as m:
        before = CardCacheFile.from_bytes(m.read_file("cardcf"))
        m.authenticate_admin(MGMT)
        m.call("CardCreateContainer", 2, 1, 6, 256, None)
        after = CardCacheFile.from_bytes(m.read_file("cardcf"))
        assert after.wContainersFreshness == before.wContainersFreshness + 1
        assert m.containers()[2].bFlags == 0x01 and m.containers()[2].wKeyExchangeKeySizeBits == 256
        # the key is on the card: a new context sees the container too
        assert md(card).containers()[2].bFlags == 0x01


def test_a_different_card_under_the_same_context_is_noticed(card: InProcessConnection) -> None:
    cd = acquired(card)
    first = read(cd, None, "cardid")[1]
    assert read(cd, "mscp", "cmapfile")[0] == 0
    piv = PivSession(card)  # another application rewrites the CHUID (a new card identity)
    piv.authenticate(MGMT)
    content = piv.get_data(ObjectId.CHUID).replace(first, bytes(range(16)))
    piv.put_data(ObjectId.CHUID, content)
    assert read(cd, None, "cardid") == (0, bytes(range(16)))
    name = ContainerMapRecord.from_bytes(read(cd, "mscp", "cmapfile")[1][:86]).wszGuid
    assert name == "01" + bytes(range(16))[1:].hex()


def test_a_written_cmapfile_is_not_served_stale_from_the_cache(card: InProcessConnection) -> None:
    cache = Cache()
    with Minidriver(card_data=cached(card, cache)) as m:
        records = m.containers()
        records[0] = ContainerMapRecord("{renamed}", 0x03, 0, 0)
        m.authenticate_pin(b"123456")
        m.write_file("mscp/cmapfile", b"".join(bytes(r) for r in records))
        assert m.containers()[0].wszGuid == "{renamed}"
