"""Follows one canary's audit events through the admin API and prints each
as it happens, with weights and metric values, until the rollout ends.
Exit 0 on Succeeded, 1 on Failed, 3 after the time limit."""
import json
import sys
import time
import urllib.request

server, name, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
after = int(sys.argv[4]) if len(sys.argv) > 4 else 0
start = time.time()
while time.time() - start < limit:
    with urllib.request.urlopen("%s/api/v1/canaries/%s/events?after=%d" % (server, name, after), timeout=5) as r:
        events = json.load(r)
    for e in events:
        after = max(after, e["id"])
        bar = "#" * (e["weight"] // 5)
        line = "  %6.1fs  %-15s %-12s weight %3d%% %-20s %s" % (
            time.time() - start, e["type"], e["phase"], e["weight"], bar, e["message"])
        for m in e.get("metrics") or []:
            v = "no data" if m.get("value") is None else "%.2f" % m["value"]
            line += "\n%44s%s = %s (%s)" % ("", m["name"], v, "pass" if m["passed"] else "FAIL")
        print(line, flush=True)
    with urllib.request.urlopen("%s/api/v1/canaries/%s" % (server, name), timeout=5) as r:
        st = json.load(r)
    if st["phase"] in ("Succeeded", "Failed") and not events:
        sys.exit(0 if st["phase"] == "Succeeded" else 1)
    time.sleep(0.2)
sys.exit(3)
