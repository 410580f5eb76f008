package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/reconciler/storage"
	"github.com/nodevirt/nodevirt/runtime/importer"
	"github.com/nodevirt/nodevirt/runtime/loop"
	"github.com/nodevirt/nodevirt/runtime/statedb"
	"github.com/nodevirt/nodevirt/runtime/volumes"
)

// storageFlags are the storage commands' own flags.
type storageFlags struct {
	selfHeal bool
}

func newStorageCmd(o *options) *cobra.Command {
	sf := &storageFlags{}
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Local storage: storage classes, volumes, loop-backed block PVs, claims and DataVolume imports",
	}
	cmd.AddCommand(newStorageDescribeCmd(o, sf), newStoragePlanCmd(o, sf), newStorageApplyCmd(o, sf))
	return cmd
}

// storageEnv is one storage command's run.
type storageEnv struct {
	e  *env
	db *statedb.DB
	m  *storage.Manager
	st *storage.State
}

func (s *storageEnv) Close() {
	if s.m != nil {
		s.m.Close()
	}
	s.e.Close()
}

// openStorage takes the state lock before it fetches anything: storage
// apply changes the host, and describe and plan read the records an agent
// is writing.
func (o *options) openStorage(ctx context.Context, sf *storageFlags) (*storageEnv, error) {
	db, err := o.lockState()
	if err != nil {
		return nil, err
	}
	e, err := o.openSourceWith(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	e.closer = append([]func() error{db.Close}, e.closer...)
	s := &storageEnv{e: e, db: db}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	_, node, err := e.load(ctx)
	if err != nil {
		return nil, err
	}
	s.st = node.Storage
	if s.m, err = newStorageManager(o, sf, s.db); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// storagePlanned checks the output format, opens storage and plans it: the
// start of storage describe and plan.
func (o *options) storagePlanned(ctx context.Context, sf *storageFlags) (*storageEnv, *storage.Plan, error) {
	if err := o.checkOutput(); err != nil {
		return nil, nil, err
	}
	s, err := o.openStorage(ctx, sf)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.m.Plan(ctx, s.st)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, p, nil
}

// newStorageManager wires the runtime packages to the storage reconciler.
func newStorageManager(o *options, sf *storageFlags, kv storage.KV) (*storage.Manager, error) {
	log := o.logger()
	return storage.NewManager(storage.Config{
		Root:          o.root,
		StateDir:      o.stateDir,
		AllowedRoots:  o.allowedRoots,
		SelfHeal:      sf.selfHeal,
		AllowPruneAll: o.allowPruneAll,
		Log:           log,
	}, importerAdapter{importer.New(importer.Config{Log: log})}, loopAdapter{loop.New()}, volumes.Files{},
		importer.SecretsDir{Dir: o.secretsDir}, kv)
}

// importerAdapter is runtime/importer behind storage.Importer.
type importerAdapter struct{ im *importer.Importer }

func (a importerAdapter) Import(ctx context.Context, r storage.ImportRequest, progress func(float64)) (storage.ImportResult, error) {
	kind := map[string]importer.SourceKind{
		storage.SourceHTTP: importer.HTTP, storage.SourceRegistry: importer.Registry, storage.SourceBlank: importer.Blank,
		storage.SourcePVC: importer.Clone, storage.SourceUpload: importer.Upload,
	}[r.Kind]
	res, err := a.im.Import(ctx, importer.Request{
		Source: importer.Source{Kind: kind, URL: r.URL, CA: r.CA, Username: r.Username, Password: r.Password,
			Headers: r.Headers, Checksum: r.Checksum, Insecure: r.Insecure, Architecture: r.Architecture, Path: r.SourcePath},
		Target:   importer.Target{Path: r.Target, Block: r.Block, Size: r.Size, Preallocate: r.Preallocate},
		Scratch:  r.Scratch,
		Limits:   importer.Limits{CPUMillis: r.Limits.CPUMillis, MemoryBytes: r.Limits.MemoryBytes},
		Progress: progress,
	})
	return storage.ImportResult{Format: res.Format, Compression: res.Compression, VirtualSize: res.VirtualSize,
		Transferred: res.Transferred, Scratch: res.Scratch, Preallocation: res.Preallocation, Clone: res.Clone, Limits: res.Limits}, err
}

// loopAdapter is runtime/loop behind storage.Loops.
type loopAdapter struct{ l *loop.Loops }

func (a loopAdapter) AttachAt(dev, backing string) error {
	return a.l.AttachAt(dev, backing, loop.Options{})
}
func (a loopAdapter) Backing(dev string) (string, bool, error) { return a.l.Backing(dev) }
func (a loopAdapter) Find(backing string) ([]string, error)    { return a.l.Find(backing) }
func (a loopAdapter) Detach(dev string) error                  { return a.l.Detach(dev) }

func newStorageDescribeCmd(o *options, sf *storageFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "describe",
		Short: "Show storage classes with the seed's feature matrix, volumes, and claims with their phase and progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, p, err := o.storagePlanned(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer s.Close()
			return printDescription(cmd.OutOrStdout(), o.output, s.m.Describe(s.st, p), p)
		},
	}
}

func newStoragePlanCmd(o *options, sf *storageFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "plan",
		Short: "Show what storage apply would do (dry run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, p, err := o.storagePlanned(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer s.Close()
			if o.output != "table" {
				return printData(cmd.OutOrStdout(), o.output, p)
			}
			printStoragePlan(cmd.OutOrStdout(), p)
			return nil
		},
	}
}

func newStorageApplyCmd(o *options, sf *storageFlags) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Make this host's storage match the source once; --wait also waits for imports",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			s, err := o.openStorage(cmd.Context(), sf)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			w := cmd.OutOrStdout()
			var all storage.Report
			var p *storage.Plan
			// Rounds: a clone waits for its source's import, so apply again
			// while the previous round did something.
			for round := 0; round < 10; round++ {
				if p, err = s.m.Plan(ctx, s.st); err != nil {
					return err
				}
				rep := s.m.Apply(ctx, p, storage.All)
				all.Outcomes = append(all.Outcomes, rep.Outcomes...)
				all.Failed += rep.Failed
				if !wait {
					break
				}
				if err := waitImports(ctx, cmd.ErrOrStderr(), s.m, rep); err != nil {
					return err
				}
				if len(rep.Outcomes) == 0 {
					break
				}
			}
			if p, err = s.m.Plan(ctx, s.st); err != nil {
				return err
			}
			d := s.m.Describe(s.st, p)
			if o.output != "table" {
				if err := printData(w, o.output, map[string]any{"report": all, "storage": d}); err != nil {
					return err
				}
			} else {
				printStorageReport(w, all)
				if err := printDescription(w, "table", d, p); err != nil {
					return err
				}
			}
			failedImports := 0
			for _, c := range d.Claims {
				if c.Status.Phase == storage.PhaseFailed {
					failedImports++
				}
			}
			if all.Failed > 0 || (wait && failedImports > 0) || s.st.Diags.HasErrors() {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every import started has finished")
	cmd.Flags().BoolVar(&sf.selfHeal, "self-heal", true, "re-attach detached loop devices and re-import missing disks")
	return cmd
}

// waitImports waits for the running imports, showing them on w as apply
// does (a bar per import on a terminal, percent lines elsewhere).
func waitImports(ctx context.Context, w io.Writer, m *storage.Manager, rep storage.Report) error {
	p := newImportProgress(w)
	defer p.stop()
	keys := rep.Imports()
	done := make(chan error, 1)
	go func() { done <- m.Wait(ctx) }()
	tick := time.NewTicker(agent.ProgressInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			p.update(m.Imports(keys))
			return err
		case <-tick.C:
			p.update(m.Imports(keys))
		}
	}
}

func bytesText(n int64) string {
	if n == 0 {
		return "-"
	}
	return resource.NewQuantity(n, resource.BinarySI).String()
}

func printStoragePlan(w io.Writer, p *storage.Plan) {
	if p.PruneSuspended {
		fmt.Fprintln(w, "Pruning is suspended: a file of this revision failed to parse.")
	}
	if len(p.Actions) == 0 {
		fmt.Fprintln(w, "No changes. The host's storage matches the source.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTION\tOBJECT\tTARGET\tREASON")
		for _, a := range p.Actions {
			flag := ""
			if a.Drift {
				flag = " [drift]"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", a.Kind, a.Object, a.Target, a.Reason, flag)
			for _, ch := range a.Changes {
				fmt.Fprintf(tw, "\t  ~ %s\t\t\n", ch)
			}
		}
		tw.Flush()
	}
	if len(p.Diags) > 0 {
		fmt.Fprintf(w, "\n%d diagnostics:\n", len(p.Diags))
		for _, d := range p.Diags {
			fmt.Fprintf(w, "  %s\n", d.Error())
		}
	}
}

func printStorageReport(w io.Writer, rep storage.Report) {
	if len(rep.Outcomes) == 0 {
		fmt.Fprintln(w, "Nothing to do.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tACTION\tOBJECT\tTARGET\tDETAIL")
	for _, o := range rep.Outcomes {
		detail := o.Reason
		if o.Error != "" {
			detail = o.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Result, o.Kind, o.Object, o.Target, detail)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func printDescription(w io.Writer, format string, d storage.Description, p *storage.Plan) error {
	if format != "table" {
		return printData(w, format, d)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORAGE CLASS\tPROVISIONER\tRECLAIM\tBINDING\tKIND (seed 8.18.1)\tLIVE MIGRATION\tHOST-ASSISTED CLONE\tSTORAGE-ASSISTED CLONE\tSNAPSHOT")
	for _, c := range d.Classes {
		name := c.Name
		if c.Default {
			name += " (default)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, c.Provisioner, c.ReclaimPolicy, c.BindingMode,
			c.Features.Kind, c.Features.LiveMigration, c.Features.HostAssistedClone, c.Features.StorageAssistedClone, c.Features.Snapshot)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PERSISTENT VOLUME\tCAPACITY\tMODE\tCLASS\tRECLAIM\tPHASE\tCLAIM\tDEVICE\tPATH")
	for _, v := range d.Volumes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, bytesText(v.Capacity), v.VolumeMode, dash(v.Class),
			v.ReclaimPolicy, v.Phase, dash(v.Claim), dash(v.Device), v.Path)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLAIM\tKIND\tPHASE\tPROGRESS\tREADY\tCLASS\tCAPACITY\tDISK\tPATH\tMESSAGE")
	for _, c := range d.Claims {
		kind, _, _ := strings.Cut(c.Object, " ")
		if c.Owner != "" {
			kind += " (" + c.Owner + ")"
		}
		msg := c.Status.Message
		if r := c.Result; r != nil && c.Status.Ready {
			msg = strings.TrimSpace(strings.Join([]string{r.Format, r.Compression, r.Clone, r.Limits}, " "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%v\t%s\t%s\t%s\t%s\t%s\n", c.Key, kind, c.Status.Phase, c.Status.Progress, c.Status.Ready,
			dash(c.Class), bytesText(c.Capacity), bytesText(c.DiskSize), dash(c.Status.Path), msg)
	}
	tw.Flush()
	if p != nil && len(p.Diags) > 0 {
		fmt.Fprintf(w, "\n%d diagnostics:\n", len(p.Diags))
		for _, dg := range p.Diags {
			fmt.Fprintf(w, "  %s\n", dg.Error())
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
