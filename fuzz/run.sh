#!/bin/sh
# Builds every libFuzzer target (fuzz/fuzz_*.c) with ASan+UBSan and runs each
# for SECONDS (default 30) over its seed corpus (fuzz/corpus/NAME/, copied to
# a scratch directory so that runs do not grow the repo). A crash, leak or
# hang (-timeout) fails the run.
set -e
SECONDS_EACH=${1:-30}
cd "$(dirname "$0")/.."
out=build-fuzz
mkdir -p "$out"
PKGS="libuv yaml-0.1 jansson sqlite3 libcurl libcrypto"
LIB_SRC=$(ls src/*.c | grep -v -e 'src/main.c' -e 'src/canaryctl.c')
status=0
for f in fuzz/fuzz_*.c; do
	[ -f "$f" ] || continue
	name=$(basename "$f" .c)
	corpus=fuzz/corpus/${name#fuzz_}
	bin="$out/$name"
	# shellcheck disable=SC2086
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -Isrc $(pkg-config --cflags $PKGS) \
		"$f" $LIB_SRC -o "$bin" $(pkg-config --libs $PKGS) -lm -lpthread
	work=$(mktemp -d)
	[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
	echo "fuzz: $name for ${SECONDS_EACH}s"
	if ! "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=0 "$work" >"$out/$name.log" 2>&1; then
		echo "fuzz: $name FAILED"; tail -n 40 "$out/$name.log"; status=1
	else
		echo "fuzz: $name ok ($(grep -o 'cov: [0-9]*' "$out/$name.log" | tail -n1), $(ls "$work" | wc -l) corpus files)"
	fi
	rm -rf "$work"
done
exit $status
