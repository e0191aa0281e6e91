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
# figure here: before each measurement the script waits (up to a minute)
# until the machine has been idle for two seconds, and records how busy it
# was; on a machine that stays busy it goes on and the record says so. A
# peer that cannot be built or a run that fails is reported (a
# {"bench":"error"} line and a message) and the script goes on. The lines
# are also written to bench/results/MACHINE-DATE.jsonl, MACHINE named from
# lscpu. THREADS (default "1 2") sets the thread counts.
set -eu
script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
threads=${THREADS:-1 2}

family=$(lscpu | awk '/^CPU family/ {print $3}')
model=$(lscpu | awk '/^Model:/ {print $2}')
machine=$(printf '%s-f%s-m%s' "$(lscpu | sed -n 's/^Model name: *//p')" "$family" "$model" | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-')
results=bench/results/$machine-$(date +%Y-%m-%d).jsonl
if [ -z "${RUN_PEERS_TEED:-}" ]; then
	echo "run-peers: results also in $results" >&2
	RUN_PEERS_TEED=1 sh "$script" "$@" | tee "$results"
	exit
fi

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

# quiet waits (up to a minute) for two idle seconds.
quiet() {
	waited=0
	while b=$(busy) && awk -v b="$b" 'BEGIN { exit !(b > 0.05) }' && [ $waited -lt 30 ]; do
		waited=$((waited + 1))
		[ $((waited % 10)) = 1 ] && say "waiting for an idle machine (busy $b)"
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
		if ! /usr/bin/time -f '%U %S' -o "$build/time" "$@" > "$build/out" 2> "$build/err"; then
			say "$label: failed: $(tail -3 "$build/err" | tr '\n' ' ')"
			echo "{\"bench\":\"error\",\"run\":\"$label\"}"
			return 0
		fi
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

# peer NAME CMD...: builds a peer; a failure is reported and the peer skipped.
peer_ok() { [ -x "$build/$1" ]; }
build_peer() {
	name=$1
	shift
	if ! "$@" -o "$build/$name" 2> "$build/err"; then
		say "cannot build $name (skipped): $(tail -2 "$build/err" | tr '\n' ' ')"
		echo "{\"bench\":\"error\",\"run\":\"build $name\"}"
	fi
}

say "building"
go build -o "$build/avq" ./cmd/avq
build_peer sgemm gcc -O2 -Wall bench/peers/sgemm.c -lopenblas
build_peer stream gcc -O3 -march=native -fopenmp bench/peers/stream.c
build_peer fmapeak gcc -O2 -fopenmp bench/peers/fmapeak.c
lscpu | sed -n 's/^Model name: *\(.*\)/{"bench":"machine","cpu":"\1"}/p'
echo "{\"bench\":\"machine\",\"family\":$family,\"model\":$model,\"name\":\"$machine\"}"

say "fma peak"
for t in $threads; do peer_ok fmapeak && clean "fmapeak $t" env OMP_NUM_THREADS="$t" "$build/fmapeak"; done

say "stream"
for t in $threads; do peer_ok stream && clean "stream $t" env OMP_NUM_THREADS="$t" "$build/stream"; done

say "gemm"
for t in $threads; do
	for w in f32 f16; do clean "gemm $w $t" "$build/avq" bench gemm --json --threads "$t" --weights "$w"; done
	peer_ok sgemm && clean "openblas $t" $peer OPENBLAS_NUM_THREADS="$t" "$build/sgemm"
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
			peer_ok sgemm && clean "openblas gemv $t" $peer OPENBLAS_NUM_THREADS="$t" "$build/sgemm" 1 "$rows" 4096
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
	peer_ok stream && clean "stream $t" env OMP_NUM_THREADS="$t" "$build/stream"
	clean "decode $t" "$build/avq" bench decode --json --threads "$t"
	peer_ok stream && clean "stream $t" env OMP_NUM_THREADS="$t" "$build/stream"
done

say "edge"
clean edge "$build/avq" bench edge --json
