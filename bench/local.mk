# bench: see docs/HACKING.md for how fragments are written.
