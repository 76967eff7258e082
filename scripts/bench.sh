#!/usr/bin/env bash
# Every benchmark in one run, and the reliability figures; writes BENCHMARKS.md.
#
#   scripts/bench.sh                          # benches + long reliability suite
#   BENCH_RELIABILITY=quick scripts/bench.sh  # benches + the quick (CI) form
#   BENCH_RELIABILITY=skip scripts/bench.sh   # benches only
#   BENCH_ONLY="lease-store-memory lease-http" scripts/bench.sh   # a subset
#   BENCH_ONLY=shell scripts/bench.sh         # the shell benchmark alone
#   BENCH_ONLY=proxy scripts/bench.sh         # the port proxy benchmark alone
#   BENCH_RELIABILITY_TESTS="scale crash" scripts/bench.sh   # some suite targets
#
# It builds the local Docker test image (scripts/test-images.sh) and starts a
# private Redis (scripts/redis.sh), as scripts/test.sh does, and stops it on
# exit. Then it runs, one after the other (they measure; nothing else should
# run meanwhile):
#
#   cargo bench -p lease-store-memory          (memory_store, memory_per_lease)
#   cargo bench -p lease-store-sqlite          (sqlite_store: vs bare rusqlite, claims
#                                               at 100k and 1M, bytes per lease; files
#                                               on TMPDIR's disk)
#   cargo bench -p lease-docker                (lifecycle, on the real engine)
#   cargo bench -p lease-store-redis           (redis_store, on the private Redis)
#   cargo bench -p lease-http --bench http_api
#   cargo bench -p lease-reliability --bench shell   (shell sessions through the
#                                               server vs a direct docker exec:
#                                               keystroke echo p50/p99, cat of
#                                               50 MiB; on the real engine)
#   cargo bench -p lease-reliability --bench forward (lease port-forward vs a
#                                               direct connection to the container:
#                                               MiB/s both ways; on the real engine)
#   cargo test -p lease-reliability --release  (LEASE_RELIABILITY=long unless
#                                               BENCH_RELIABILITY says otherwise,
#                                               LEASE_FIGURES=1)
#
# The reliability tests print machine-readable lines `FIGURE name=value` when
# LEASE_FIGURES=1; this script collects them into a table. Every run's full
# output stays in target/bench-logs/<UTC time>/. BENCHMARKS.md gets the date,
# the machine (CPUs, memory, kernel, Docker and Redis versions, rustc), the
# reliability figures and each benchmark's result lines. A benchmark that
# fails is marked FAILED in the file and makes the script exit non-zero, after
# the file is written.
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
logs="${CARGO_TARGET_DIR:-target}/bench-logs/$stamp"
mkdir -p "$logs"
reliability="${BENCH_RELIABILITY:-long}"
only="${BENCH_ONLY:-lease-store-memory lease-store-sqlite lease-docker lease-store-redis lease-http shell forward lease-reliability}"
wanted() { [[ " $only " == *" $1 "* ]]; }

step "local Docker test image (scripts/test-images.sh)"
if ! scripts/test-images.sh >&2; then
    echo "bench.sh: no Docker test image; the Docker benches will print why they skip" >&2
fi

step "private Redis (scripts/redis.sh)"
redis_env="$(scripts/redis.sh start)"
eval "$redis_env"
trap 'scripts/redis.sh stop "${LEASE_TEST_REDIS_DIR:-}"' EXIT

declare -a names=() statuses=() seconds=()

# run NAME COMMAND…: stdout to NAME.out (the results), stderr to NAME.err
# (cargo's and criterion's progress), both also shown on the terminal.
run() {
    local name="$1"
    shift
    step "$name: $*"
    local started=$SECONDS
    "$@" > >(tee "$logs/$name.out") 2> >(tee "$logs/$name.err" >&2)
    local status=$?
    wait
    names+=("$name")
    statuses+=("$status")
    seconds+=("$((SECONDS - started))")
    return 0
}

if wanted lease-store-memory; then run lease-store-memory cargo bench -p lease-store-memory; fi
if wanted lease-store-sqlite; then run lease-store-sqlite cargo bench -p lease-store-sqlite; fi
if wanted lease-docker; then run lease-docker cargo bench -p lease-docker; fi
if wanted lease-store-redis; then run lease-store-redis cargo bench -p lease-store-redis; fi
if wanted lease-http; then run lease-http cargo bench -p lease-http --bench http_api; fi
if wanted shell; then run shell cargo bench -p lease-reliability --bench shell; fi
if wanted forward; then run forward cargo bench -p lease-reliability --bench forward; fi
if wanted proxy; then run proxy cargo bench -p lease-reliability --bench proxy; fi
if wanted lease-reliability && [[ "$reliability" != skip ]]; then
    targets=()
    for target in ${BENCH_RELIABILITY_TESTS:-}; do targets+=(--test "$target"); done
    run lease-reliability env LEASE_RELIABILITY="$reliability" LEASE_FIGURES=1 \
        cargo test -p lease-reliability --release "${targets[@]}" -- --nocapture --test-threads=1
fi

# --- BENCHMARKS.md ---------------------------------------------------------

# The result lines of a bench's stdout: criterion's per-benchmark lines and
# the benches' own summaries, without criterion's outlier notes and its
# comparisons with whatever run happened to be saved before.
results() {
    grep -v -E '^(Found [0-9]+ outliers|  [0-9]+ \([0-9.]+%\) (low|high) (mild|severe)|Benchmarking |Gnuplot not found|running [0-9]+ tests?$|test result:|test .* \.\.\. |FIGURE |$)' "$1" |
        grep -v -E '^ +(change:|Performance has (regressed|improved)|No change in performance|Change within noise)' || true
}

mem_kib="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
docker_version="$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo 'not reachable')"
redis_version="$(redis-server --version 2>/dev/null | sed -E 's/.*v=([^ ]+).*/\1/' || echo unknown)"
cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)"

{
    echo "# Benchmarks"
    echo
    echo "Written by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); full logs in"
    echo "\`target/bench-logs/$stamp/\` of that run. Rerun the script to refresh this file."
    echo
    echo "Settings: reliability form \`$reliability\`, suite targets \`${BENCH_RELIABILITY_TESTS:-all}\`,"
    echo "runs \`$only\`."
    echo
    echo "## Machine"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| CPUs (nproc) | $(nproc) × $cpu_model |"
    echo "| memory | $((mem_kib / 1024 / 1024)) GiB |"
    echo "| kernel | $(uname -sr) |"
    echo "| Docker engine | $docker_version |"
    echo "| Redis | $redis_version |"
    echo "| rustc | $(rustc --version 2>/dev/null) |"
    echo "| git commit | $(git rev-parse --short HEAD 2>/dev/null) |"
    echo
    echo "## Runs"
    echo
    echo "| run | result | seconds |"
    echo "|---|---|---|"
    for i in "${!names[@]}"; do
        if [[ "${statuses[$i]}" == 0 ]]; then result=ok; else result="FAILED (exit ${statuses[$i]})"; fi
        echo "| ${names[$i]} | $result | ${seconds[$i]} |"
    done
    if [[ -f "$logs/lease-reliability.out" ]]; then
        echo
        echo "## Reliability figures ($reliability form)"
        echo
        echo "From the reliability suite's \`FIGURE name=value\` lines (times in ms;"
        echo "lateness is a container's \`destroy\` event in Docker's event stream after"
        echo "its lease's exact expiry)."
        echo
        echo "| figure | value |"
        echo "|---|---|"
        grep -ohE 'FIGURE [A-Za-z0-9_.:-]+=[^ ]+' "$logs/lease-reliability.out" |
            sed -E 's/^FIGURE ([^=]+)=(.*)$/| \1 | \2 |/'
    fi
    for i in "${!names[@]}"; do
        [[ "${names[$i]}" == lease-reliability ]] && continue
        echo
        echo "## ${names[$i]}"
        echo
        echo '```text'
        results "$logs/${names[$i]}.out"
        echo '```'
    done
} >BENCHMARKS.md

step "wrote BENCHMARKS.md (logs in $logs)"
for status in "${statuses[@]}"; do
    [[ "$status" == 0 ]] || exit 1
done
