"""Applets: handler tables keyed by INS, and what the card runtime gives them.

An applet class declares handlers with ``@command(INS.X, needs=...)``; the
table is built once per class by ``__init_subclass__``. The runtime calls
:meth:`Applet.process` with the command (already unwrapped from secure
messaging) and a :class:`CommandContext` describing the channel it came on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

from ..gp.levels import SecurityLevel
from ..iso7816 import SW, CardError, CommandAPDU, ResponseAPDU
from ..trace import Secret

if TYPE_CHECKING:
    from ..gp.session import SecureSession

__all__ = ["Applet", "CommandContext", "Handler", "Secret", "SecretRule", "command"]

Handler = Callable[["Applet", CommandAPDU, "CommandContext"], ResponseAPDU]
F = TypeVar("F", bound=Callable[..., ResponseAPDU])
#: which data of a command is secret: fixed, or decided from the command itself
SecretRule = Secret | Callable[[CommandAPDU], Secret]


@dataclass
class CommandContext:
    """What a handler may know and change about the channel it runs on."""

    channel: int
    #: the session open (or being opened) on this channel, if any
    session: SecureSession | None = None
    #: set by an applet that starts a new session (INITIALIZE UPDATE); the
    #: runtime installs it on the channel after the handler returns
    new_session: SecureSession | None = field(default=None)

    @property
    def level(self) -> SecurityLevel:
        if self.session is not None and self.session.is_open:
            return self.session.level
        return SecurityLevel.NONE


def command(
    ins: int, *, needs: SecurityLevel = SecurityLevel.NONE, secret: SecretRule = Secret.NONE
) -> Callable[[F], F]:
    """Register the decorated method as the handler of ``ins``.

    ``needs``: the secure channel level the command requires; without it the
    runtime answers 6982 before the handler runs. ``secret``: which data of
    the command and its response traces and logs must redact (PINs, keys,
    cryptograms); a callable decides from the command (e.g. by object tag).
    """

    def mark(fn: F) -> F:
        fn.vcard_command = (int(ins), needs)  # type: ignore[attr-defined]
        fn.vcard_trace = (getattr(ins, "name", f"INS_{int(ins):02X}"), secret)  # type: ignore[attr-defined]
        return fn

    return mark


class Applet:
    """Base class. Subclasses set ``aid`` (instance AID) and declare handlers."""

    _table: ClassVar[dict[int, tuple[Callable[..., ResponseAPDU], SecurityLevel]]] = {}
    #: INS -> (name, secret rule) for traces and logs, from the same decorators
    _trace: ClassVar[dict[int, tuple[str, SecretRule]]] = {}
    name: ClassVar[str] = "applet"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._table = dict(cls._table)
        cls._trace = dict(cls._trace)
        for fn in vars(cls).values():
            spec = getattr(fn, "vcard_command", None)
            if spec is not None:
                cls._table[spec[0]] = (fn, spec[1])
                cls._trace[spec[0]] = getattr(fn, "vcard_trace", (f"INS_{spec[0]:02X}", Secret.NONE))

    @classmethod
    def describe(cls, cmd: CommandAPDU) -> tuple[str, Secret]:
        """The INS name and the secret data of ``cmd`` as this applet's table declares them."""
        entry = cls._trace.get(cmd.ins)
        if entry is None:  # not a command of this applet: nobody declared its data, so hide it
            return f"INS_{cmd.ins:02X}", Secret.COMMAND
        name, rule = entry
        return name, rule if isinstance(rule, Secret) else rule(cmd)

    def __init__(self, aid: bytes, *, aliases: tuple[bytes, ...] = ()) -> None:
        self.aid = bytes(aid)
        #: further AIDs SELECT accepts for this instance (e.g. legacy ISD AIDs)
        self.aliases = tuple(bytes(a) for a in aliases)

    # -- life cycle hooks (transient state) --------------------------------
    def select(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        """Answer SELECT by AID; the default returns no FCI."""
        return ResponseAPDU()

    def deselect(self, channel: int) -> None:
        """Another application was selected on ``channel`` or it was closed."""

    def reset(self) -> None:
        """Power-off, reset or removal: drop every transient state."""

    @property
    def selectable(self) -> bool:
        return True

    def process(self, cmd: CommandAPDU, ctx: CommandContext) -> ResponseAPDU:
        entry = self._table.get(cmd.ins)
        if entry is None:
            raise CardError(SW.INS_NOT_SUPPORTED, f"{self.name}: INS {cmd.ins:02X}")
        handler, needs = entry
        if needs & ~ctx.level:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED, f"{self.name}: needs {needs!r}")
        return handler(self, cmd, ctx)
