"""The stack: pcscd in its namespaces (:mod:`.pcscd`, :mod:`.netns`, :mod:`.userns`) and the
runtime/state paths (:mod:`.paths`)."""
