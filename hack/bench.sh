#!/usr/bin/env bash
# Runs the benchmarks behind docs/performance.md's goals, each COUNT times,
# and summarises every group with benchstat (median and 95 % interval).
# The paired benchmarks (nodevirt and raw virsh taking turns in each op)
# report the ratio as a metric, so benchstat's row for it is the figure to
# compare with the goal. Raw output and summaries go to OUT.
#
#   hack/bench.sh [group...]     groups: steady validate latency apply all
#   COUNT=5 OUT=bench-results/<time> by default.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-5}
OUT=${OUT:-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
GO=${GO:-go}
mkdir -p "$OUT"

# group: packages, benchmark pattern, extra flags (build tags, benchtime)
run() {
  local name=$1 pkgs=$2 pattern=$3; shift 3
  echo "== $name: go test -run '^\$' -bench '$pattern' -benchmem -count $COUNT $* $pkgs" >&2
  # shellcheck disable=SC2086
  $GO test -run '^$' -bench "$pattern" -benchmem -count "$COUNT" -timeout 120m "$@" $pkgs | tee "$OUT/$name.txt"
  $GO tool benchstat "$OUT/$name.txt" | tee "$OUT/$name.benchstat"
}

groups=("$@")
if [ ${#groups[@]} -eq 0 ] || [ "${groups[0]}" = all ]; then
  groups=(steady validate latency apply other)
fi
for g in "${groups[@]}"; do
  case $g in
    # no-op reconcile of 1,000 VMs (test driver) and the agent's RSS
    steady) run steady "./reconciler/vm/ ./cmd/nodevirt/" 'Plan_noop1000|Reconcile_noop1000|AgentRSS' -benchtime 20x ;;
    # validate of 1,000 to 100,000 VMs
    validate) run validate ./cmd/nodevirt/ '^BenchmarkValidate' -benchtime 3x ;;
    # save → running and push → running, next to raw virsh (qemu:///system)
    latency) run latency ./e2e/ 'WatchedSaveToRunning|PushToRunningWebhook|VirshDefineStart|CommitToRunning' -tags e2e -benchtime 10x ;;
    # one apply of 20 and 100 new VMs, next to sequential virsh
    apply) run apply ./e2e/ 'ApplyVsVirsh' -tags e2e -benchtime 1x ;;
    # everything else (sources, state, importer, upload, API, metrics, web)
    other) run other ./... 'GitFetch|DirDigest|DB_|Backup|Open|Import|CurlXz|Upload|API_|SetVMs|Scrape|Render1000' -tags e2e ;;
    *) echo "bench: unknown group $g (steady validate latency apply other all)" >&2; exit 2 ;;
  esac
done
echo "results in $OUT" >&2
