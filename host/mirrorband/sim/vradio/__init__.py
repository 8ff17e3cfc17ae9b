"""Virtual BLE radio for Mirrorband: Bumble controllers on a shared link.

- :mod:`mirrorband.sim.vradio.hub`: the radio hub (virtual controllers on one link,
  timing model, fault injection), in-process or as a process serving Bumble HCI
  transports on 127.0.0.1.
- :mod:`mirrorband.sim.vradio.mpble`: MicroPython's ``bluetooth`` module for CPython on
  a virtual controller (what the firmware of a virtual band imports).
- :mod:`mirrorband.sim.vradio.bleak_backend`: a Bumble-backed bleak backend so host code
  uses the public bleak API on the virtual radio.

See docs/radio.md.
"""
