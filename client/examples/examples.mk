# Example clients; see docs/HACKING.md
