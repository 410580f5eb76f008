//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodevirt/nodevirt/reconciler/vm"
)

// applyBenchSizes are how many new VMs one apply brings up.
var applyBenchSizes = []int{20, 100}

// applyBenchVM is benchVM with the guest memory the many-VM benchmarks
// use: 100 TCG guests run at once on the 24 GiB machine.
func applyBenchVM(ns, name string) string {
	return strings.Replace(benchVM(ns, name), "guest: 64Mi", "guest: 32Mi", 1)
}

func applyBenchName(i int) string { return fmt.Sprintf("pa%03d", i) }

// applyBenchLimits are the --parallel-vms bounds to measure side by side:
// NODEVIRT_BENCH_PARALLEL_VMS=1,4,8 runs a sub-benchmark per bound
// ("parallel-vms=4"); unset, the default bound alone, unnamed.
func applyBenchLimits(b *testing.B) []string {
	v := os.Getenv("NODEVIRT_BENCH_PARALLEL_VMS")
	if v == "" {
		return []string{""}
	}
	limits := strings.Split(v, ",")
	for _, l := range limits {
		if _, err := strconv.Atoi(l); err != nil {
			b.Fatalf("NODEVIRT_BENCH_PARALLEL_VMS=%q: %q is not a number", v, l)
		}
	}
	return limits
}

// running counts the world's domains that are running.
func (w *world) running(b *testing.B) int {
	out := virsh(b, "list", "--state-running", "--name")
	n := 0
	for _, d := range strings.Fields(out) {
		if strings.HasPrefix(d, w.ns+"_") {
			n++
		}
	}
	return n
}

// BenchmarkApplyNewVMs: per iteration, a commit adding N VMs is pushed
// (not timed), then one `nodevirt apply` process runs until all N run on
// qemu:///system: fetch, decode, render, plan, N defines and starts. The
// removal of the N VMs is not timed.
func BenchmarkApplyNewVMs(b *testing.B) {
	for _, n := range applyBenchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for _, limit := range applyBenchLimits(b) {
				if limit == "" {
					benchApplyNewVMs(b, n, nil)
					continue
				}
				b.Run("parallel-vms="+limit, func(b *testing.B) {
					benchApplyNewVMs(b, n, []string{"--parallel-vms", limit})
				})
			}
		})
	}
}

func benchApplyNewVMs(b *testing.B, n int, flags []string) {
	a := newApplyBench(b, n)
	for b.Loop() {
		b.StopTimer()
		a.add()
		b.StartTimer()
		a.apply(flags)
		b.StopTimer()
		a.remove()
		b.StartTimer()
	}
}

// applyBench brings N new VMs up with one `nodevirt apply` per round.
type applyBench struct {
	b     *testing.B
	w     *world
	n     int
	files map[string]string
}

func newApplyBench(b *testing.B, n int) *applyBench {
	a := &applyBench{b: b, w: newWorld(b), n: n, files: map[string]string{}}
	for i := range n {
		a.files["vms/"+applyBenchName(i)+".yaml"] = applyBenchVM(a.w.ns, applyBenchName(i))
	}
	return a
}

// add pushes the commit adding the N VMs.
func (a *applyBench) add() { a.w.commit(fmt.Sprintf("add %d VMs", a.n), a.files) }

// apply runs one `nodevirt apply` with flags and checks all N run.
func (a *applyBench) apply(flags []string) {
	a.w.mustNodevirt(append([]string{"apply"}, flags...)...)
	if got := a.w.running(a.b); got != a.n {
		a.b.Fatalf("%d of %d VMs running after apply", got, a.n)
	}
}

// remove pushes their removal and applies it.
func (a *applyBench) remove() {
	gone := map[string]string{}
	for f := range a.files {
		gone[f] = ""
	}
	a.w.commit(fmt.Sprintf("remove %d VMs", a.n), gone)
	a.w.mustNodevirt("apply", "--allow-prune-all")
	if left := a.w.domains(); len(left) != 0 {
		a.b.Fatalf("left after the removal: %v", left)
	}
}

// virshBench defines and starts the same N domains with virsh.
type virshBench struct {
	b        *testing.B
	w        *world
	n        int
	xmls     []string
	teardown string
}

// newVirshBench renders the N VMs' domain XML with `nodevirt render domain`.
func newVirshBench(b *testing.B, n int) *virshBench {
	v := &virshBench{b: b, w: newWorld(b), n: n}
	dir := filepath.Join(filepath.Dir(v.w.state), "manifests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, applyBenchName(i)+".yaml"), []byte(applyBenchVM(v.w.ns, applyBenchName(i))), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var teardown []string
	for i := range n {
		out, errOut, err := v.w.nodevirtAt(dir, "render", "domain", applyBenchName(i))
		if err != nil {
			b.Fatalf("render %s: %v\n%s", applyBenchName(i), err, errOut)
		}
		xml := filepath.Join(dir, applyBenchName(i)+".xml")
		if err := os.WriteFile(xml, []byte(out), 0o644); err != nil {
			b.Fatal(err)
		}
		v.xmls = append(v.xmls, xml)
		teardown = append(teardown, "destroy "+v.w.dom(applyBenchName(i)), "undefine "+v.w.dom(applyBenchName(i)))
	}
	v.teardown = strings.Join(teardown, "; ")
	return v
}

// run is `virsh define` + `virsh start` of each domain, one after the other.
func (v *virshBench) run() {
	for i, xml := range v.xmls {
		virsh(v.b, "define", xml)
		virsh(v.b, "start", v.w.dom(applyBenchName(i)))
	}
	if got := v.w.running(v.b); got != v.n {
		v.b.Fatalf("%d of %d domains running", got, v.n)
	}
}

// runParallel is the same define + start of each domain by `workers` shells
// at once, each taking the next domain: the best a client of libvirtd can do
// on this host with the same XML, whoever it is. Its ratio to run is the
// floor an apply's ratio is to be read against.
func (v *virshBench) runParallel(workers int) {
	next := make(chan int)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for i := range next {
				for _, args := range [][]string{{"define", v.xmls[i]}, {"start", v.w.dom(applyBenchName(i))}} {
					if out, err := virshOK(args...); err != nil {
						errs <- fmt.Errorf("virsh %v: %v\n%s", args, err, out)
						for range next {
						}
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for i := range v.xmls {
		next <- i
	}
	close(next)
	for range workers {
		if err := <-errs; err != nil {
			v.b.Fatal(err)
		}
	}
	if got := v.w.running(v.b); got != v.n {
		v.b.Fatalf("%d of %d domains running", got, v.n)
	}
}

// remove destroys and undefines the N domains in one virsh process.
func (v *virshBench) remove() {
	virsh(v.b, v.teardown)
	if left := v.w.domains(); len(left) != 0 {
		v.b.Fatalf("left after the removal: %v", left)
	}
}

// BenchmarkVirshSequential is the same work by hand: `virsh define` and
// `virsh start` of each of the N domain XMLs `nodevirt render domain`
// prints for those VMs, one after the other. Rendering and the removal
// are not timed.
func BenchmarkVirshSequential(b *testing.B) {
	for _, n := range applyBenchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			v := newVirshBench(b, n)
			for b.Loop() {
				v.run()
				b.StopTimer()
				v.remove()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkApplyVsVirsh pairs the two above in every op, taking turns at
// going first, so load from other work on the machine hits both alike:
// the ratio (apply / virsh) is the figure to read, ns/op is not.
// NODEVIRT_BENCH_PARALLEL_VMS adds a ratio per bound. Each op also runs
// virsh with as many shells at once as the apply's default bound
// (runParallel): its ratio, floor-ratio, is what the host allows any
// client, since a TCG start is CPU work.
func BenchmarkApplyVsVirsh(b *testing.B) {
	for _, n := range applyBenchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			v := newVirshBench(b, n)
			a := newApplyBench(b, n)
			limits := applyBenchLimits(b)
			// as many shells as the apply's default bound
			floorWorkers := vm.DefaultParallel()
			took := map[string]time.Duration{}
			round := 0
			for b.Loop() {
				runs := append([]string{"virsh", "virsh-parallel"}, limits...)
				k := round % len(runs)
				round++
				for _, run := range append(runs[k:], runs[:k]...) {
					if run == "virsh" {
						start := time.Now()
						v.run()
						took[run] += time.Since(start)
						b.Logf("op %d: virsh %.1fs", round, time.Since(start).Seconds())
						v.remove()
						continue
					}
					if run == "virsh-parallel" {
						start := time.Now()
						v.runParallel(floorWorkers)
						took[run] += time.Since(start)
						b.Logf("op %d: virsh, %d at once %.1fs", round, floorWorkers, time.Since(start).Seconds())
						v.remove()
						continue
					}
					var flags []string
					if run != "" {
						flags = []string{"--parallel-vms", run}
					}
					a.add()
					start := time.Now()
					a.apply(flags)
					took[run] += time.Since(start)
					b.Logf("op %d: apply %v %.1fs", round, flags, time.Since(start).Seconds())
					a.remove()
				}
			}
			ops := float64(b.N)
			b.ReportMetric(took["virsh"].Seconds()/ops, "virsh-s/op")
			b.ReportMetric(took["virsh-parallel"].Seconds()/ops, "virsh-parallel-s/op")
			b.ReportMetric(took["virsh-parallel"].Seconds()/took["virsh"].Seconds(), "floor-ratio")
			for _, l := range limits {
				unit := "apply"
				if l != "" {
					unit += "-pvms" + l
				}
				b.ReportMetric(took[l].Seconds()/ops, unit+"-s/op")
				b.ReportMetric(took[l].Seconds()/took["virsh"].Seconds(), strings.Replace(unit, "apply", "ratio", 1))
			}
		})
	}
}
