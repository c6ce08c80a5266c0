#!/bin/sh
# Installs what canaryd needs to build, test and run its demo on Debian,
# only when something is missing (so it is quick the second time).
set -e
pkgs="build-essential pkg-config libuv1-dev libyaml-dev libjansson-dev libsqlite3-dev libcurl4-openssl-dev libcmocka-dev curl wrk haproxy nginx python3 clang libclang-rt-14-dev prometheus prometheus-alertmanager"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "setup: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# the Debian packages start services we do not want holding ports
for s in nginx haproxy prometheus prometheus-alertmanager prometheus-node-exporter; do
	command -v systemctl >/dev/null 2>&1 && $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
	$SUDO service "$s" stop >/dev/null 2>&1 || true
done
exit 0
