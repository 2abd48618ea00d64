"""vcard: a virtual smart card behind the real pcscd (the card side)."""

__version__ = "0.1.0"
