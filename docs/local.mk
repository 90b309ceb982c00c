# docs: see docs/HACKING.md for how fragments are written.
