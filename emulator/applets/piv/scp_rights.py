"""Issuer rights inside a secure channel: how PIV authorises card management over SCP03.

GlobalPlatform's model (GPCS §10, GP Card API ``SecureChannel.getSecurityLevel``): an
application trusts its security domain to authenticate the card issuer. A session that the
PIV applet's security domain (the ISD, through the secure channel service) opened with
EXTERNAL AUTHENTICATE at a level with both C-MAC and C-DECRYPTION proves the host holds the
issuer's static keys, and every command in it is authentic and confidential. PIV therefore
grants such a session the rights of the card management key (9B): PUT DATA, GENERATE,
IMPORT ASYMMETRIC KEY, SET MANAGEMENT KEY, SET PIN RETRIES. This is what lets a card
management server import a key through a relay that never sees it (design.md, "Secure key
injection ... mapped onto GlobalPlatform").

The rule, and nothing more:

* the channel's session is open (EXTERNAL AUTHENTICATE succeeded) and its level has C-MAC
  and C-DECRYPTION (levels 03, 13, 33); R-MAC/R-ENC add nothing and take nothing away;
* a plain channel, a level 00/01/11 session (authentic but not confidential: key material
  would travel in clear) or a half-open session (INITIALIZE UPDATE only) gets no rights;
* rights last exactly as long as the session: it ends on SELECT, a MAC failure, a new
  INITIALIZE UPDATE, channel close, reset or removal (gp-scp.md §2.7), and with it the rights.
  Nothing is stored: the management-key status of the channel is not touched.

A session can only exist on a channel where PIV is selected if PIV's INITIALIZE UPDATE started
it (SELECT ends any session), so the session was authenticated by PIV's own security domain.
"""

from __future__ import annotations

from ...gp.levels import SecurityLevel
from ..base import CommandContext

__all__ = ["ISSUER_LEVEL", "has_issuer_rights"]

#: the least a session must have to act for the issuer (GPCS §10.6 levels)
ISSUER_LEVEL = SecurityLevel.AUTHENTICATED | SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION


def has_issuer_rights(ctx: CommandContext) -> bool:
    """True when ``ctx``'s channel carries an open session at C-MAC + C-DECRYPTION or higher."""
    return (ctx.level & ISSUER_LEVEL) == ISSUER_LEVEL
