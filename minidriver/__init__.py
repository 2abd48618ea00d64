"""Host-side Windows-minidriver-style smart card library over PC/SC (never imports `emulator`)."""
