"""``python -m emulator.control.daemon``: the vcard daemon (see :mod:`.server`)."""

from emulator.control.daemon.server import main

raise SystemExit(main())
