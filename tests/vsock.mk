# see docs/HACKING.md
