#!/bin/sh
# run-peers.sh builds the peer harnesses in bench/peers and runs them next to
# the matching `avq bench` subcommands, in one session on one machine, so that
# every figure of ours has a peer figure measured minutes from it. It prints
# one JSON object per line on stdout (progress on stderr); summarize.py turns
# that into the tables of docs/performance.md:
#
#	sh bench/run-peers.sh > results.jsonl && python3 bench/summarize.py results.jsonl
#
# Needs gcc, Debian's OpenBLAS and PyTorch (not part of the Go build):
#
#	apt-get install -y gcc libopenblas-dev python3-torch
#
# OpenBLAS and PyTorch run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset,
# so OpenBLAS picks its kernels from the CPU itself (AVX-512 "Cooperlake" on
# the Zen 5 box of docs/performance.md; a sandbox environment may set
# OPENBLAS_CORETYPE=Haswell, which halves it). Other processes distort every
# figure here: before each measurement the script waits (up to 15 minutes)
# until the machine has been idle for two seconds, and records how busy it
# was. THREADS (default "1 2") sets the thread counts.
set -eu
cd "$(dirname "$0")/.."
threads=${THREADS:-1 2}
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

say() { echo "run-peers: $*" >&2; }

# busy prints the fraction of all CPU time spent outside idle/iowait over
# two seconds.
busy() {
	a=$(head -1 /proc/stat)
	sleep 2
	b=$(head -1 /proc/stat)
	echo "$a
$b" | awk '{ t = 0; for (i = 2; i <= NF; i++) t += $i; idle = $5 + $6
		if (NR == 1) { t0 = t; i0 = idle } else printf "%.3f", 1 - (idle - i0) / (t - t0) }'
}

# quiet waits (up to 15 minutes) for two idle seconds.
quiet() {
	waited=0
	while b=$(busy) && awk -v b="$b" 'BEGIN { exit !(b > 0.05) }' && [ $waited -lt 450 ]; do
		waited=$((waited + 1))
		[ $((waited % 30)) = 1 ] && say "waiting for an idle machine (busy $b)"
	done
}

# clean runs a command on an idle machine and measures how much CPU other
# processes took meanwhile (the machine's busy time less the command's own,
# as a fraction of all CPU time). Above 3% the figures are not clean: it runs
# the command again, at most four times, and prints the cleanest output with
# that fraction.
clean() {
	label=$1
	shift
	best=1
	for try in 1 2 3 4; do
		quiet
		a=$(head -1 /proc/stat)
		/usr/bin/time -f '%U %S' -o "$build/time" "$@" > "$build/out"
		b=$(head -1 /proc/stat)
		other=$(printf '%s\n%s\n' "$a" "$b" | awk -v own="$(cat "$build/time" | tail -1)" '
			{ t = 0; for (i = 2; i <= NF; i++) t += $i; busy = t - $5 - $6
			  if (NR == 1) { t0 = t; b0 = busy } else {
				split(own, o, " "); f = (busy - b0 - 100 * (o[1] + o[2])) / (t - t0)
				printf "%.3f", f < 0 ? 0 : f } }')
		if awk -v o="$other" -v b="$best" 'BEGIN { exit !(o < b) }'; then
			best=$other
			cp "$build/out" "$build/best"
		fi
		awk -v o="$other" 'BEGIN { exit !(o <= 0.03) }' && break
		say "$label: other processes took $other of the machine; again"
	done
	cat "$build/best"
	echo "{\"bench\":\"load\",\"run\":\"$label\",\"others\":$best,\"tries\":$try}"
}

peer="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"

say "building"
go build -o "$build/avq" ./cmd/avq
gcc -O2 -Wall bench/peers/sgemm.c -lopenblas -o "$build/sgemm"
gcc -O3 -march=native -fopenmp bench/peers/stream.c -o "$build/stream"
lscpu | sed -n 's/^Model name: *\(.*\)/{"bench":"machine","cpu":"\1"}/p'
echo "{\"bench\":\"machine\",\"family\":$(lscpu | awk '/^CPU family/ {print $3}'),\"model\":$(lscpu | awk '/^Model:/ {print $2}')}"

say "stream"
for t in $threads; do clean "stream $t" env OMP_NUM_THREADS="$t" "$build/stream"; done

say "gemm"
for t in $threads; do
	for w in f32 f16; do clean "gemm $w $t" "$build/avq" bench gemm --json --threads "$t" --weights "$w"; done
	clean "openblas $t" $peer OPENBLAS_NUM_THREADS="$t" "$build/sgemm"
done

# The one-row products are bound by memory bandwidth, which on a shared host
# drifts by tens of percent within minutes: ours and OpenBLAS's alternate,
# three times each, and summarize.py takes the medians.
say "gemv"
for t in $threads; do
	for rows in 4096 11008 32064; do
		for rep in 1 2 3; do
			for w in f16 f32; do
				clean "gemv $w $t" "$build/avq" bench gemm --json --threads "$t" --weights "$w" --m 1 --n "$rows" --k 4096
			done
			clean "openblas gemv $t" $peer OPENBLAS_NUM_THREADS="$t" "$build/sgemm" 1 "$rows" 4096
		done
	done
done

say "vision tower"
for t in $threads; do
	clean "vit $t" "$build/avq" bench vit --json --threads "$t"
	# PASSIVE: torch's OpenMP workers and OpenBLAS's threads otherwise spin
	# against each other on two cores.
	clean "torch $t" $peer OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" \
		/usr/bin/python3 bench/peers/vit_torch.py "$t"
done

say "decode"
for t in $threads; do
	clean "stream $t" env OMP_NUM_THREADS="$t" "$build/stream"
	clean "decode $t" "$build/avq" bench decode --json --threads "$t"
	clean "stream $t" env OMP_NUM_THREADS="$t" "$build/stream"
done

say "edge"
clean edge "$build/avq" bench edge --json
