"""``python -m minidriver check``: the open minidriver conformance checker, against any PIV card.

    python -m minidriver check [--reader R] [--destructive] [--json]

Runs every row of the parameter-rule table (minidriver-spec.md §3) and the functional round
trips through the Cardmod API on the card in reader R (default: the first reader with a card),
prints one line per row (function, case, expected, got, ok) and exits 0 if every row passed,
1 if any failed, 2 for a usage or connection problem.

The card's secrets default to the PIV test values (PIN 123456, PUK 12345678, the well-known
management key); give others with the environment variables MINIDRIVER_PIN, MINIDRIVER_PUK and
MINIDRIVER_MGMT_KEY (hex) -- never on the command line, where other users can read them.
``--destructive`` also runs the rows that block the PIN (unblocked again with the PUK) and put
new keys into containers 22 and 23 (PIV retired slots 94 and 95).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

PIV_TEST_PIN = "123456"
PIV_TEST_PUK = "12345678"
PIV_TEST_MGMT_KEY = "010203040506070801020304050607080102030405060708"


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m minidriver",
        description="Windows smart-card minidriver API tools",
        epilog="exit codes: 0 every check passed, 1 a check failed, 2 usage or connection error",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check", help="run the minidriver conformance table against a PIV card")
    check.add_argument("--reader", help="PC/SC reader name (default: the first reader holding a card)")
    check.add_argument("--destructive", action="store_true", help="also block/unblock the PIN and write keys 22/23")
    check.add_argument("--json", action="store_true", help="print the results as JSON")
    check.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG (never PINs or keys)")
    return parser


def _secrets() -> tuple[bytes, bytes, bytes]:
    pin = os.environ.get("MINIDRIVER_PIN", PIV_TEST_PIN).encode()
    puk = os.environ.get("MINIDRIVER_PUK", PIV_TEST_PUK).encode()
    try:
        mgmt = bytes.fromhex(os.environ.get("MINIDRIVER_MGMT_KEY", PIV_TEST_MGMT_KEY))
    except ValueError:
        raise UsageError("MINIDRIVER_MGMT_KEY must be hex (48 digits for 3DES, 32/48/64 for AES)") from None
    if len(mgmt) not in (16, 24, 32):
        raise UsageError("MINIDRIVER_MGMT_KEY must be 16, 24 or 32 bytes")
    if not 1 <= len(pin) <= 8 or not 1 <= len(puk) <= 8:
        raise UsageError("MINIDRIVER_PIN and MINIDRIVER_PUK must be 1 to 8 characters")
    return pin, puk, mgmt


def _check(args: argparse.Namespace) -> int:
    from .cardmod import checks
    from .cardmod.helper import card_data_for_reader, release
    from .cardmod.types import CardData
    from .pcsc import PcscError

    pin, puk, mgmt = _secrets()

    def make_card() -> CardData:
        return card_data_for_reader(args.reader)

    try:
        make_card_probe = make_card()
        release(make_card_probe)
    except PcscError as exc:
        raise UsageError(f"cannot connect to {args.reader or 'a card'}: {exc}") from None
    except Exception as exc:  # MinidriverError: no reader / no card
        raise UsageError(f"cannot connect to {args.reader or 'a card'}: {exc}") from None
    try:
        results = checks.run_checks(
            checks.all_checks(),
            make_card,
            destructive=args.destructive,
            pin=pin,
            puk=puk,
            mgmt_key=mgmt,
            release_card=release,
        )
    except RuntimeError as exc:  # CardAcquireContext refused the card
        raise UsageError(str(exc)) from None
    print(checks.to_json(results) if args.json else checks.format_table(results))
    return 0 if all(r.ok for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        print(f"minidriver: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return _check(args)
    except UsageError as exc:
        print(f"minidriver: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
