#!/bin/sh
# Installs, on Debian, what one make target needs, and only what is missing
# (so the second run is quick):
#   sh scripts/setup.sh build|demo|test|fuzz|bench
# It never stops, disables or reconfigures a service that was already on the
# machine. Packages it installs itself that ship a service (nginx, HAProxy,
# Prometheus, Alertmanager) are the tests' peers, started by the tests on free
# loopback ports: those are kept from starting at install (policy-rc.d, only
# when the machine has none) and from starting at boot (only the units of
# packages this run installed).
set -e
what=${1:-build}
build="build-essential pkg-config libuv1-dev libyaml-dev libjansson-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev"
case "$what" in
build) pkgs="$build" ;;
demo) pkgs="$build curl python3" ;;
# python3-yaml, python3-jsonschema and python3-kubernetes: the test Kubernetes
# API server (tests/k8s/) and the official client it is checked with, run
# under Debian's /usr/bin/python3; openssl makes their certificates; groff-base
# renders the man pages and zsh runs canaryctl's zsh completion
# (tests/e2e/test_canaryctl.py); sqlite3 runs the auditor's check of
# docs/audit.md (tests/e2e/test_audit.py); chromium shows the dashboard to
# tests/e2e/test_dashboard.py, which runs canaryd under faketime for the
# summer (BST) screenshots
test) pkgs="$build libcmocka-dev curl wrk haproxy nginx python3 prometheus prometheus-alertmanager util-linux strace python3-yaml python3-jsonschema python3-kubernetes openssl groff-base zsh sqlite3 chromium faketime" ;;
fuzz) pkgs="$build clang libclang-rt-14-dev" ;;
bench) pkgs="$build curl wrk haproxy nginx python3 linux-perf" ;;
*) echo "usage: sh scripts/setup.sh build|demo|test|fuzz|bench" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# the router tests evaluate the CRDs' CEL rules with an npm package: node
# and npm from Debian unless a node with its npm is there already (a
# NodeSource nodejs ships npm and conflicts with Debian's npm package)
if [ "$what" = test ] && ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi
[ -z "$missing" ] && exit 0
echo "setup ($what): installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
ours=""
if [ ! -e "$policy" ]; then
	# 101: "action not allowed": invoke-rc.d/deb-systemd-invoke do not start
	# the services of what we install now; removed again below
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	ours=1
fi
rc=0
{ $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null; } || rc=$?
[ -n "$ours" ] && $SUDO rm -f "$policy"
[ $rc -eq 0 ] || exit $rc
# the services of packages installed just now: not at boot either
if command -v systemctl >/dev/null 2>&1; then
	for p in $missing; do
		case "$p" in
		nginx|haproxy|prometheus|prometheus-alertmanager)
			$SUDO systemctl disable "$p" >/dev/null 2>&1 || true ;;
		esac
	done
fi
exit 0
