"""The control plane, split by job.

``daemon/``  the daemon side: one process serving both vpcd slots and the control socket
             (``python -m emulator.control.daemon``)
``stack/``   the stack: pcscd in its namespaces (root: network + mount; ``--user``: a user
             namespace too), the runtime and state paths, pid checks
``client/``  the client side: the ``vcard`` CLI, the Python API (``VCard``), the control-socket
             client, ``vcard doctor``, PC/SC helpers for the CLI
``messages.py``, ``protocol.py``: the wire both ends share (typed, versioned messages; framing)

Dependencies point one way: client -> stack, client -> wire <- daemon; the daemon never imports
the client side.
"""
