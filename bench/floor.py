"""The floor: a responder on the same vpcd transport that answers every APDU 9000.

It runs as its own process, like the daemon, with the same SlotServer code
(the same socket options, framing and thread), so the difference between it
and the real card is what the card runtime and applets cost.
"""

from __future__ import annotations

import argparse
import signal
import threading

from emulator.control.stack.netns import enter_net_namespace, same_net_namespace
from emulator.transport.server import SlotServer
from emulator.transport.vpcd import Ctrl

OK = b"\x90\x00"
ATR = bytes.fromhex("3B8B0180730000C0657663617264BE")


class Floor:
    def atr(self) -> bytes:
        return ATR

    def control(self, ctrl: Ctrl) -> None:
        pass

    def transmit(self, apdu: bytes) -> bytes:
        return OK


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--netns-pid", type=int)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.netns_pid and not same_net_namespace(args.netns_pid):
        enter_net_namespace(args.netns_pid)
    server = SlotServer(Floor(), "127.0.0.1", args.port, name="floor")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    server.connect()
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
