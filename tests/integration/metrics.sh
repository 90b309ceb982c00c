#!/bin/bash
# metrics.sh - `virtmgrd --metrics`: /metrics parsed by a real Prometheus
# parser (python3-prometheus-client's text_string_to_metric_families), on
# a Unix socket (mode 0600) and on a loopback TCP port; its figures match
# ListVms and GetVmStats (CPU time between two GetVmStats readings taken
# around the scrape, memory equal); calls are counted by method and status;
# a VM that dies leaves the per-VM series and counts in deaths by reason;
# other paths are 404; a non-loopback address is refused at start with a
# message naming it. Two real guests (TCG).
source "$(dirname "$0")/lib.sh"
# Debian's python3 (configure's choice), which has the Debian modules, even
# where another python3 comes first in PATH
python3() { if [[ -x /usr/bin/python3 ]]; then /usr/bin/python3 "$@"; else command python3 "$@"; fi; }
python3 -c 'import prometheus_client.parser' 2>/dev/null ||
	fail "python3-prometheus-client is missing (build.sh installs it)"

MSOCK=$T/metrics.sock
start_daemon --accel tcg --metrics "$MSOCK"
export VIRTMGR_SOCKET=$SOCK
V() { timeout 600 "$VMCTL_BIN" "$@"; }

# scrape [PATH]: GET PATH (default /metrics) on the Unix socket; prints the body
# and fails unless the status is 200
scrape() {
	python3 - "$MSOCK" "${1:-/metrics}" <<'EOF'
import http.client, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sys.argv[1])
c = C("localhost")
c.request("GET", sys.argv[2])
r = c.getresponse()
body = r.read().decode()
if r.status != 200:
    print(r.status, body, file=sys.stderr)
    sys.exit(1)
sys.stdout.write(body)
EOF
}

# metric FILE NAME [LABEL=VALUE...]: the value of the one sample of NAME with
# those labels, parsed with prometheus_client; "none" when there is none
metric() {
	python3 - "$@" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
want = dict(a.split("=", 1) for a in sys.argv[3:])
found = [s.value for fam in text_string_to_metric_families(text) for s in fam.samples
         if s.name == sys.argv[2] and all(s.labels.get(k) == v for k, v in want.items())]
if len(found) > 1:
    sys.exit("%d samples of %s %s" % (len(found), sys.argv[2], want))
print(repr(found[0]) if found else "none")
EOF
}

[[ $(stat -c %a "$MSOCK") == 600 ]] || fail "metrics socket mode $(stat -c %a "$MSOCK"), not 600"
scrape >"$T/m0" || fail "scrape failed"
python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
names = {f.name for f in text_string_to_metric_families(open(sys.argv[1]).read())}
need = {"virtmgr_info", "virtmgr_vms", "virtmgr_connections", "virtmgr_calls", "virtmgr_vm_deaths",
        "virtmgr_vm_info", "virtmgr_vm_cpu_seconds", "virtmgr_vm_rss_bytes", "virtmgr_vm_memory_bytes"}
missing = need - names
assert not missing, missing' "$T/m0" || fail "metric families missing: $(cat "$T/m0")"
[[ $(metric "$T/m0" virtmgr_vms state=STARTED) == 0.0 ]] || fail "VMs before any: $(cat "$T/m0")"
ok "/metrics on a Unix socket (mode 0600) parses with the Prometheus parser, every family present"

a=$(V run --detach --name ma --mem 128 -- /bin/sleep 3600)
b=$(V run --detach --name mb -- /bin/sleep 3600)
V wait ma --state STARTED --timeout 300 >/dev/null || fail "vm ma did not start"
V wait mb --state STARTED --timeout 300 >/dev/null || fail "vm mb did not start"
cpu_before=$(V --json stats ma | json cpu_ns)
scrape >"$T/m1" || fail "scrape failed"
cpu_after=$(V --json stats ma | json cpu_ns)
V --json list >"$T/list"
python3 - "$T/m1" "$T/list" "$a" "$b" "$cpu_before" "$cpu_after" <<'EOF' || fail "metrics do not match ListVms/GetVmStats: $(cat "$T/m1")"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
m1, listf, a, b, before, after = sys.argv[1:]
samples = [s for f in text_string_to_metric_families(open(m1).read()) for s in f.samples]
def one(metric, **labels):
    got = [s for s in samples if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(got) == 1, (metric, labels, got)
    return got[0]
vms = [json.loads(l) for l in open(listf)]
states = {}
for v in vms:
    states[v["state"]] = states.get(v["state"], 0) + 1
for state in ("NOT_STARTED", "STARTING", "STARTED", "READY", "FINISHED", "DEAD"):
    assert one("virtmgr_vms", state=state).value == states.get(state, 0), (state, states)
for v in vms:
    info = one("virtmgr_vm_info", id=v["id"])
    assert info.labels["name"] == v["name"] and info.labels["owner"] == str(v["owner_uid"]), info
    assert info.labels["state"] == v["state"] and info.labels["cid"] == str(v["cid"]), info
    assert one("virtmgr_vm_memory_bytes", id=v["id"], name=v["name"]).value == v["memory_mib"] * 1048576
    assert one("virtmgr_vm_rss_bytes", id=v["id"]).value > 16 * 1048576
cpu = one("virtmgr_vm_cpu_seconds_total", id=a).value * 1e9
# read between two GetVmStats: it lies between them (clock ticks round it)
assert int(before) - 1e7 <= cpu <= int(after) + 1e7, (before, cpu, after)
assert one("virtmgr_calls_total", method="CreateVm", code="OK").value >= 2
assert one("virtmgr_calls_total", method="GetVmStats", code="OK").value >= 1
EOF
ok "figures match ListVms (states, ids, names, owners, CIDs, memory) and GetVmStats (CPU time)"

rc=0
V stats nosuch 2>/dev/null || rc=$?
((rc == 1)) || fail "stats of nosuch: rc $rc"
scrape >"$T/m2" || fail "scrape failed"
[[ $(metric "$T/m2" virtmgr_calls_total method=GetVmStats code=NOT_FOUND) == 1.0 ]] ||
	fail "failed call not counted: $(grep calls_total "$T/m2")"
ok "a failed call is counted by method and status (GetVmStats NOT_FOUND)"

V kill mb >/dev/null
scrape >"$T/m3" || fail "scrape failed"
[[ $(metric "$T/m3" virtmgr_vm_info id="$b") == none ]] || fail "dead VM still has per-VM figures"
[[ $(metric "$T/m3" virtmgr_vm_cpu_seconds_total id="$b") == none ]] || fail "dead VM still has CPU figures"
[[ $(metric "$T/m3" virtmgr_vm_info id="$a") == 1.0 ]] || fail "the live VM is gone from the metrics"
[[ $(metric "$T/m3" virtmgr_vm_deaths_total reason=KILLED) == 1.0 ]] || fail "death not counted"
[[ $(metric "$T/m3" virtmgr_vms state=DEAD) == $(V --json list | grep -c '"state":"DEAD"').0 ]] ||
	fail "DEAD count differs from ListVms"
ok "a VM that dies leaves the per-VM series and is counted in deaths by reason (KILLED)"

rc=0
scrape /nothing 2>"$T/err" || rc=$?
((rc == 1)) && grep -q '^404 no /nothing here' "$T/err" || fail "another path: $(cat "$T/err")"
ok "other paths answer 404"
V kill ma >/dev/null
stop_daemon
[[ ! -e $MSOCK ]] || fail "metrics socket left behind"

# TCP on loopback, and what is refused
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_daemon --accel tcg --metrics "127.0.0.1:$port"
python3 - "$port" <<'EOF' || fail "TCP scrape on 127.0.0.1:$port failed"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=30) as r:
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    fams = {f.name for f in text_string_to_metric_families(r.read().decode())}
assert "virtmgr_vms" in fams, fams
EOF
stop_daemon
ok "/metrics on a loopback TCP port (text/plain; version=0.0.4)"

for bad in 0.0.0.0:9 192.0.2.1:9 "127.0.0.1" relative/path; do
	rc=0
	"$VIRTMGRD" --socket "$T/bad.sock" --run-dir "$T/badrun" --metrics "$bad" 2>"$T/err" || rc=$?
	((rc != 0)) && grep -q -- "--metrics $bad" "$T/err" || fail "--metrics $bad: rc $rc, $(cat "$T/err")"
done
grep -q 'is not a loopback address' <("$VIRTMGRD" --socket "$T/bad.sock" --run-dir "$T/badrun" \
	--metrics 0.0.0.0:9 2>&1) || fail "no word about loopback"
ok "non-loopback and malformed addresses are refused at start, naming them"
