#!/usr/bin/env bash
# Runs the benchmarks behind docs/performance.md's goals, each COUNT times,
# and summarises every group with benchstat (median and 95 % interval).
# The paired benchmarks (nodevirt and raw virsh taking turns in each op)
# report the ratio as a metric, so benchstat's row for it is the figure to
# compare with the goal. Raw output and summaries go to OUT.
#
#   hack/bench.sh [group...]     groups: steady rss validate latency apply other all
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
  groups=(steady rss validate latency apply other)
fi
for g in "${groups[@]}"; do
  case $g in
    # no-op reconcile of 1,000 VMs (test driver), drift check and between
    steady) run steady ./reconciler/vm/ 'Plan_noop1000|Reconcile_noop1000' -benchtime 20x ;;
    # the agent process's memory over 1,000 reconciles (test driver in the
    # agent); behind libvirtd each listing costs a round trip per domain,
    # so that variant runs NODEVIRT_BENCH_RECONCILES (100 unless set)
    rss)
      run rss ./cmd/nodevirt/ 'AgentRSS_1000/inproc' -benchtime 1x
      NODEVIRT_BENCH_RECONCILES=${NODEVIRT_BENCH_RECONCILES:-100} run rss-daemon ./cmd/nodevirt/ 'AgentRSS_1000/daemon' -benchtime 1x ;;
    # validate of 1,000 to 100,000 VMs, and of many invalid ones
    validate) run validate ./cmd/nodevirt/ '^BenchmarkValidate' -benchtime 1x ;;
    # save → running and push → running, next to raw virsh (qemu:///system)
    latency) run latency ./e2e/ 'WatchedSaveToRunning|PushToRunningWebhook|VirshDefineStart|CommitToRunning' -tags e2e -benchtime 5x ;;
    # one apply of 20 and 100 new VMs, paired with sequential virsh in each op
    apply) run apply ./e2e/ 'ApplyVsVirsh' -tags e2e -benchtime 1x ;;
    # everything else: watcher, agent iteration, libvirt listing, sources,
    # state, importer, upload, API, metrics, web
    other) run other ./... 'DirWatch|Iterate_newVM|Domains_1000|GitFetch|DirDigest|DB_|Backup|Open|Import|CurlXz|Upload|API_|SetVMs|Scrape|Render1000' -tags e2e ;;
    *) echo "bench: unknown group $g (steady rss validate latency apply other all)" >&2; exit 2 ;;
  esac
done
echo "results in $OUT" >&2
