"""The daemon side of the control plane: :mod:`.server` (run as ``python -m emulator.control.daemon``)."""
