"""The client side of the control plane: the ``vcard`` CLI (:mod:`.cli`), the Python API
(:mod:`.api`, ``VCard``), the control-socket client (:mod:`.client`) and ``vcard doctor``."""
