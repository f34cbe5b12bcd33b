#!/bin/sh
# build-udp.sh -- compile a kernel tree's net/netfilter/nf_conntrack_proto_udp.c, unmodified,
# into a userspace driver (kudp_driver.c).  The kernel file is read from a bare git directory at
# build time and written only under $KJUDGE_BUILD (default /tmp/kjudge-build); nothing from the
# kernel is kept in the repository.
#
#   KJUDGE_MIRROR=DIR ./build-udp.sh all      every named build whose tree is in DIR/owner+name/repo
#   ./build-udp.sh NAME                       one named build (el7 3.10.99 4.19 5.10 5.15 6.1 6.12 6.18)
#   ./build-udp.sh NAME GITDIR [REV]          any tree
#
# Layouts (picked from the file): 3.10 (udp_error/udp_new/udp_packet as l4proto callbacks,
# timeouts passed in, nf_log_packet()), 4.19 (callbacks, nf_ct_timeout_lookup(),
# nf_l4proto_log_invalid(skb, net, pf, ...)), 5+ (nf_conntrack_udp_packet() runs udp_error()
# itself; 5.15+ log helpers take the nf_hook_state).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
B=${KJUDGE_BUILD:-/tmp/kjudge-build}
CC=${CC:-gcc}
F=net/netfilter/nf_conntrack_proto_udp.c

build_one() {
	name=$1 gitdir=$2 rev=${3:-HEAD}
	out=$B/udp-$name
	rm -rf "$out"
	mkdir -p "$out/inc"
	src=$out/nf_conntrack_proto_udp.c
	git --git-dir="$gitdir" show "$rev:$F" >"$src"
	grep -o '^[[:space:]]*#[[:space:]]*include[[:space:]]*<[^>]*>' "$src" | sed 's/.*<\(.*\)>.*/\1/' |
		sort -u | while read -r h; do
		mkdir -p "$out/inc/$(dirname "$h")"
		: >"$out/inc/$h"
	done
	layout=5+ defs=""
	if grep -q '^static int udp_packet(' "$src"; then
		if grep -q 'unsigned int \*timeouts)' "$src"; then layout=3.10 defs="-DKUDP_L310"; else layout=4.19 defs="-DKUDP_L419"; fi
	fi
	sed -n '/^static int udp_error(/,/^{/p' "$src" | grep -q 'ctinfo' && defs="$defs -DKUDP_ERROR_HAS_CTINFO"
	grep -q 'nf_l4proto_log_invalid(skb, state,' "$src" && defs="$defs -DKUDP_LOG_STATE"
	$CC -std=gnu99 -O1 -g -Wall -Wno-unused-function -Wno-unused-variable \
		-Werror=implicit-function-declaration -Werror=incompatible-pointer-types \
		-nostdinc -isystem "$(dirname "$($CC -print-libgcc-file-name)")/include" -I"$out/inc" \
		-include "$HERE/kudp_shim.h" -DKUDP_SRC="\"$src\"" $defs -c "$HERE/kudp_glue.c" -o "$out/unit.o"
	$CC -std=gnu99 -O1 -g -Wall -Wextra $defs -I"$HERE" -c "$HERE/kudp_driver.c" -o "$out/driver.o"
	$CC -o "$out/kudp" "$out/driver.o" "$out/unit.o"
	version=$(git --git-dir="$gitdir" show "$rev:Makefile" 2>/dev/null |
		sed -n 's/^VERSION = //p;s/^PATCHLEVEL = //p;s/^SUBLEVEL = //p' | paste -sd. -)
	tree=$(basename "$(dirname "$gitdir")" | sed 's/+/\//')
	printf '{"name":"%s","tree":"%s","rev":"%s","blob":"%s","layout":"%s","makefile_version":"%s","defs":"%s"}\n' \
		"$name" "$tree" "$(git --git-dir="$gitdir" rev-parse "$rev")" "$(git --git-dir="$gitdir" rev-parse "$rev:$F")" \
		"$layout" "$version" "$(echo $defs)" >"$out/SOURCE.json"
	echo "built $out/kudp ($layout layout)"
}

known() {
	M=${KJUDGE_MIRROR:?set KJUDGE_MIRROR to the folder holding the trees as owner+name/repo}
	case $1 in
	el7) echo "$M/tremb1e+linux-3.10.0-1160.el7/repo" ;;
	3.10.99) echo "$M/harviswang+linux-3.10.99/repo" ;;
	4.19) echo "$M/chens37+linux-4.19.1/repo" ;;
	5.10) echo "$M/Rtoax+linux-5.10.13/repo" ;;
	5.15) echo "$M/unifreq+linux-5.15.y/repo" ;;
	6.1) echo "$M/atho13+linux-6.1.y/repo" ;;
	6.12) echo "$M/wishday+linux-6.12.y/repo" ;;
	6.18) echo "$M/leftymods+linux-6.18.y/repo" ;;
	*) return 1 ;;
	esac
}
ALL="el7 3.10.99 4.19 5.10 5.15 6.1 6.12 6.18"
case "${1:-all}" in
all) for k in $ALL; do g=$(known "$k"); if [ -d "$g" ]; then build_one "$k" "$g"; else echo "skip $k: no tree at $g" >&2; fi; done ;;
*) if [ $# -ge 2 ]; then build_one "$1" "$2" "${3:-HEAD}"; elif g=$(known "$1"); then build_one "$1" "$g"; else echo "unknown build $1 (known: $ALL)" >&2; exit 2; fi ;;
esac
