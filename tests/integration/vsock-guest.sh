#!/bin/sh
# vsock-guest.sh - guest half of tests/integration/vsock.sh (runs as the
# payload of the test guest). Every line on the console is tagged; the host
# half waits for these lines and drives the other ends.
t=/bin/vsock-tool
M256=268435456

# a guest reader that never reads: the host's writer to it must stall alone
$t listen 1250 --stall --tag stall &
$t listen 1234 --sink --tag h2g &
$t listen 1235 --source $M256 --tag g2h &
$t listen 1236 --sink --count 64 --tag par &
# a guest writer whose host reader never reads (host listener started first)
$t connect 2 5002 --source 67108864 --tag gstall &
# nobody serves host port 5001, and CID 7 does not exist: RST, not a timeout
$t connect 2 5001 --sink --tag refused
$t connect 7 5000 --sink --tag othercid
# guest-initiated stream to the host listener <uds>_5000
$t connect 2 5000 --source 16777216 --tag g2u
# the host connects to 1240 before anything listens there, then triggers
$t listen 1239 --sink --tag trigger
$t listen 1240 --sink --tag late &
echo "[guest] all started"
wait
