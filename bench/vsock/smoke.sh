#!/bin/bash
# smoke.sh - `make check` entry: bench/vsock/run.sh in --smoke mode.
exec bash "$(dirname "$0")/run.sh" --smoke
