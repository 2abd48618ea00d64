"""How the card meets pcscd: the vpcd framing and link rule (sans-I/O) and the socket loop."""

from .link import Event, Kind, LinkDesync, VpcdLink
from .vpcd import Ctrl, Frame, VpcdDecoder, encode_frame

__all__ = ["Ctrl", "Event", "Frame", "Kind", "LinkDesync", "VpcdDecoder", "VpcdLink", "encode_frame"]
