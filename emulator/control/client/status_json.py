"""``vcard status --json``: the stack's state as one JSON object, for machines (sans-I/O).

The schema is stable: fields are only ever added (``schema`` goes up when one
changes meaning or goes away). Every key is always present; unknown values are
``null``::

    {
      "schema": 1,
      "runtime_dir": "/run/vcard",
      "running": true,                      # the daemon answers on its control socket
      "daemon": {"pid": 4242} | null,
      "pcscd": {                            # null: no pcscd recorded by vcard up
        "pid": 4200 | null,
        "mode": "netns" | "host" | "external",
        "socket": "/run/pcscd/pcscd.comm",
        "alive": true,
        "owned": true                       # started by vcard (vcard down stops it)
      } | null,
      "slots": [                            # [] when the daemon is not running
        {"slot": 0, "reader": "Virtual PCD 00 00" | null, "present": true,
         "profile": "default" | null, "state_file": "/var/lib/vcard/default.sqlite" | null,
         "vpcd_connected": true}
      ]
    }

Exit code: 0 when the daemon runs, 1 when it does not (the document is printed
either way), as for ``vcard status``.
"""

from __future__ import annotations

from typing import Any

from emulator.control.client.api import Status

__all__ = ["SCHEMA_VERSION", "status_document"]

SCHEMA_VERSION = 1


def status_document(status: Status, runtime_dir: str) -> dict[str, Any]:
    info = status.stack
    pcscd = (
        None
        if info is None
        else {
            "pid": info.pcscd_pid,
            "mode": info.mode,
            "socket": info.pcscd_socket,
            "alive": info.alive,
            "owned": info.owned,
        }
    )
    return {
        "schema": SCHEMA_VERSION,
        "runtime_dir": runtime_dir,
        "running": status.running,
        "daemon": {"pid": status.daemon_pid} if status.running else None,
        "pcscd": pcscd,
        "slots": [
            {
                "slot": s.slot,
                "reader": s.reader,
                "present": s.present,
                "profile": s.profile,
                "state_file": s.state_file,
                "vpcd_connected": s.vpcd_connected,
            }
            for s in status.slots
        ],
    }
