#!/bin/sh
# make demo: two rollouts in front of real upstream processes, live.
#  1. v2, healthy: canaryd climbs its steps and promotes it.
#  2. v3, failing 20 % of requests: canaryd rolls it back on its own.
# Everything runs on loopback ports and is stopped at the end.
set -u
BUILD=${1:-build}
dir=$(mktemp -d /tmp/canaryd-demo.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	sleep 0.3
	for p in $pids; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
P1=$(port); P2=$(port); P3=$(port); PROXY=$(port); ADMIN=$(port)
SERVER=http://127.0.0.1:$ADMIN

"$BUILD/canaryd-upstream" --listen 127.0.0.1:$P1 --name v1 2>"$dir/v1.log" & pids="$pids $!"
"$BUILD/canaryd-upstream" --listen 127.0.0.1:$P2 --name v2 2>"$dir/v2.log" & pids="$pids $!"
"$BUILD/canaryd-upstream" --listen 127.0.0.1:$P3 --name v3 --fail-rate 0.2 2>"$dir/v3.log" & pids="$pids $!"

cat >"$dir/canary.yaml" <<YAML
apiVersion: canaryd/v1
kind: Canary
metadata:
  name: shop
spec:
  router: builtin
  listen: 127.0.0.1:$PROXY
  stable:
    revision: v1
    endpoints: [127.0.0.1:$P1]
  analysis:
    interval: 1s
    threshold: 3
    maxWeight: 50
    stepWeight: 10
    metrics:
      - name: request-success-rate
        thresholdRange: { min: 99 }
        interval: 30s
      - name: request-duration
        thresholdRange: { max: 500 }
        interval: 30s
YAML
echo "== canaryd in front of v1 (stable) on 127.0.0.1:$PROXY, admin API and dashboard on $SERVER"
sed 's/^/   /' "$dir/canary.yaml"
"$BUILD/canaryd" -c "$dir/canary.yaml" --admin 127.0.0.1:$ADMIN --data-dir "$dir/data" 2>"$dir/canaryd.log" & pids="$pids $!"
i=0
until curl -sf "$SERVER/healthz" >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 100 ] && { echo "canaryd did not start:"; cat "$dir/canaryd.log"; exit 1; }
	sleep 0.1
done
python3 demo/traffic.py 127.0.0.1:$PROXY 4 50 40 & pids="$pids $!"
sleep 1

echo
echo "== 1. rollout of v2 (healthy): canaryctl rollout shop --revision v2 --endpoints 127.0.0.1:$P2"
"$BUILD/canaryctl" --server "$SERVER" rollout shop --revision v2 --endpoints 127.0.0.1:$P2 >/dev/null
python3 demo/watch.py "$SERVER" shop 60
echo "   -> canaryctl wait: exit $("$BUILD/canaryctl" --server "$SERVER" wait shop --timeout 5s >/dev/null; echo $?) (0 = Succeeded)"
"$BUILD/canaryctl" --server "$SERVER" status

echo
echo "== 2. rollout of v3 (fails 20 % of requests): canaryctl rollout shop --revision v3 --endpoints 127.0.0.1:$P3"
last=$(curl -s "$SERVER/api/v1/canaries/shop/events" | python3 -c 'import json,sys;e=json.load(sys.stdin);print(e[-1]["id"] if e else 0)')
t0=$(date +%s.%N)
"$BUILD/canaryctl" --server "$SERVER" rollout shop --revision v3 --endpoints 127.0.0.1:$P3 >/dev/null
python3 demo/watch.py "$SERVER" shop 60 "$last"
"$BUILD/canaryctl" --server "$SERVER" wait shop --timeout 30s >/dev/null
rc=$?
t1=$(date +%s.%N)
echo "   -> canaryctl wait: exit $rc (1 = Failed, rolled back) after $(python3 -c "print('%.1f' % ($t1 - $t0))") s"
"$BUILD/canaryctl" --server "$SERVER" status
echo
echo "== canaryd's log (one line per transition and check):"
tail -n 12 "$dir/canaryd.log" | sed 's/^/   /'
echo
echo "== done: stopping everything"
