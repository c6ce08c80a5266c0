#!/bin/sh
# Fails (exit 1) on an #include edge between the layers of src/ that
# ARCHITECTURE.md forbids, naming each as FILE:LINE. A folder may include
# its own headers and those of the folders before it in LAYERS; NAME-t.h,
# dataplane.h and cfgload.h are private to their folder; base/ and core/
# include no headers outside them (a header straight in src/, not placed
# in a layer yet, is one), core/ (the pure core: engine, judge, simulate,
# template, hist, readings) includes no libuv, sockets or clock, and calls
# no clock.
LAYERS="base core net state config dataplane metrics router control api cmd"
cd "$(dirname "$0")/../src" || exit 2
rank() { i=0; for l in $LAYERS; do [ "$l" = "$1" ] && echo $i && return; i=$((i + 1)); done; echo 99; }
out=$(mktemp) && trap 'rm -f "$out"' EXIT
for f in */*.[ch]; do
	d=${f%%/*}; r=$(rank "$d")
	grep -n '^#include "' "$f" | sed 's/^\([0-9]*\):#include "\(.*\)".*/\1 \2/' | while read -r n h; do
		o=$(ls -- */"$h" 2>/dev/null | head -n1); od=${o%%/*}; [ -n "$o" ] || od=src
		case "$h" in *-t.h|dataplane.h|cfgload.h) [ "$od" = "$d" ] || echo "src/$f:$n: '$h' is private to src/$od/";; esac
		if [ "$od" = src ]; then [ "$r" -gt 1 ] || echo "src/$f:$n: $d/ includes '$h', which is in no layer"
		elif [ "$(rank "$od")" -gt "$r" ]; then echo "src/$f:$n: $d/ includes '$h' from $od/, a higher layer"; fi
	done
done > "$out"
grep -nE '#include <(uv\.h|sys/socket\.h|netinet/|arpa/|netdb\.h|sys/time\.h|time\.h)|\b(clock_gettime|gettimeofday|util_mono_ms|util_wall_ms|uv_now|uv_hrtime)\(|[^_a-z]time\(' core/*.[ch] | sed 's/^/src\//; s/$/  (core is pure)/' >> "$out"
if [ -s "$out" ]; then cat "$out"; exit 1; fi
echo "layers: every #include edge is allowed"
