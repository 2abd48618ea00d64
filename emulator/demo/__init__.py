"""``vcard demo``: a real PC/SC application beside the card that unlocks with it and locks when it is pulled.

app.py is the application (PC/SC only: minidriver.pcsc, minidriver.piv),
view.py the live terminal view and the plain transcript, script.py the
scripted show, cardside.py the card's side of the wire (the daemon's trace),
runner.py puts them together.
"""
