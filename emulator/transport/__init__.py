"""How the card meets pcscd: the vpcd framing (sans-I/O) and the socket loop."""

from .vpcd import Ctrl, Frame, VpcdDecoder, VpcdProtocolError, encode_frame

__all__ = ["Ctrl", "Frame", "VpcdDecoder", "VpcdProtocolError", "encode_frame"]
