package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/nodevirt/nodevirt/internal/agent"
	"github.com/nodevirt/nodevirt/internal/fleet"
	"github.com/nodevirt/nodevirt/internal/metrics"
	"github.com/nodevirt/nodevirt/internal/pki"
	"github.com/nodevirt/nodevirt/internal/status"
	"github.com/nodevirt/nodevirt/source"
)

// fleetOptions are run's status-branch flags.
type fleetOptions struct {
	branch   string
	interval time.Duration
	signKey  string
	// nodeLease is run's --node-lease: an unchanged report is published
	// again well within it, so peers do not take this node for gone.
	nodeLease time.Duration
}

func addFleetFlags(cmd *cobra.Command, fo *fleetOptions) {
	cmd.Flags().StringVar(&fo.branch, "status-branch", "", "branch of the source's remote where the agent commits its report as nodes/<node>.json (fast-forward only, never forced); unset: no report")
	cmd.Flags().DurationVar(&fo.interval, "status-interval", 30*time.Second, "with --status-branch: push the report after a reconcile that changed it, and at least this often, never more often")
	cmd.Flags().StringVar(&fo.signKey, "status-signing-key", "", "with --status-branch: key signing the report commits: an armored OpenPGP private key or an OpenSSH private key (git's gpg.format ssh), without passphrase")
}

// statusRemote is where the status branch lives (the source's remote) and
// how to reach it: the source's credentials, and for https the CA bundle of
// --ca-file.
func (o *options) statusRemote() (string, transport.AuthMethod, []byte, error) {
	if o.source == "" {
		return "", nil, nil, errors.New("--source is required: the status branch lives on the source's remote")
	}
	u, err := url.Parse(o.source)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 { // a path (C:\ has a one-letter scheme)
		p, err := filepath.Abs(strings.TrimPrefix(o.source, "file://"))
		if err != nil {
			return "", nil, nil, fmt.Errorf("--source %q: %w", o.source, err)
		}
		return p, nil, nil, nil
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		return u.Path, nil, nil, nil
	case "ssh":
		if o.sshKeyFile == "" || o.knownHostsFile == "" {
			return "", nil, nil, errors.New("a status branch over ssh needs --ssh-key-file and --known-hosts-file")
		}
		user := "git"
		if u.User != nil && u.User.Username() != "" {
			user = u.User.Username()
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, o.sshKeyFile, "")
		if err != nil {
			return "", nil, nil, fmt.Errorf("--ssh-key-file: %w", err)
		}
		if keys.HostKeyCallback, err = gitssh.NewKnownHostsCallback(o.knownHostsFile); err != nil {
			return "", nil, nil, fmt.Errorf("--known-hosts-file: %w", err)
		}
		return u.String(), keys, nil, nil
	case "https", "http":
		var auth *githttp.BasicAuth
		if u.User != nil {
			pw, _ := u.User.Password()
			auth = &githttp.BasicAuth{Username: u.User.Username(), Password: pw}
			u.User = nil
		}
		if o.username != "" || o.passwordFile != "" {
			auth = &githttp.BasicAuth{Username: o.username}
			if o.passwordFile != "" {
				b, err := os.ReadFile(o.passwordFile)
				if err != nil {
					return "", nil, nil, fmt.Errorf("--password-file: %w", err)
				}
				auth.Password = strings.TrimRight(string(b), "\r\n")
			}
		}
		if auth != nil && strings.EqualFold(u.Scheme, "http") {
			return "", nil, nil, errors.New("credentials are never sent over plain http; use https")
		}
		var ca []byte
		if o.caFile != "" {
			if ca, err = os.ReadFile(o.caFile); err != nil {
				return "", nil, nil, fmt.Errorf("--ca-file: %w", err)
			}
		}
		if auth == nil {
			return u.String(), nil, ca, nil
		}
		return u.String(), auth, ca, nil
	}
	return "", nil, nil, fmt.Errorf("--source %q: scheme %q cannot hold a status branch", o.source, u.Scheme)
}

// readSigningKey reads the key that signs the report commits: an armored
// OpenPGP private key, or an OpenSSH private key (git's gpg.format ssh).
// Neither may have a passphrase: the agent runs unattended.
func readSigningKey(path string) (fleet.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--status-signing-key: %w", err)
	}
	if strings.Contains(string(data), "-----BEGIN OPENSSH PRIVATE KEY-----") || strings.Contains(string(data), "-----BEGIN RSA PRIVATE KEY-----") ||
		strings.Contains(string(data), "-----BEGIN EC PRIVATE KEY-----") {
		key, err := ssh.ParsePrivateKey(data)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("--status-signing-key %s: the key is protected by a passphrase; use one without", path)
		}
		if err != nil {
			return nil, fmt.Errorf("--status-signing-key %s: %w", path, err)
		}
		return fleet.SSHSigner(key), nil
	}
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("--status-signing-key %s: neither an OpenSSH private key nor an armored OpenPGP key: %w", path, err)
	}
	for _, e := range ring {
		if e.PrivateKey == nil {
			continue
		}
		if e.PrivateKey.Encrypted {
			return nil, fmt.Errorf("--status-signing-key %s: the key is protected by a passphrase; export it without one", path)
		}
		return fleet.OpenPGPSigner(e), nil
	}
	return nil, fmt.Errorf("--status-signing-key %s holds no private key", path)
}

// checkFleet refuses status-branch flags that cannot work, before the
// agent starts.
func (o *options) checkFleet(fo fleetOptions) error {
	if fo.branch == "" {
		if fo.signKey != "" {
			return errors.New("--status-signing-key needs --status-branch")
		}
		return nil
	}
	if b := cmp.Or(o.branch, source.DefaultBranch); fo.branch == b && o.tag == "" && o.commit == "" {
		// Each report would be a new revision of the source, and each
		// revision a new report.
		return fmt.Errorf("--status-branch %q is the branch the source follows; use a branch of its own", fo.branch)
	}
	if err := fleet.ValidNode(o.node); err != nil {
		return fmt.Errorf("--node with --status-branch: %w", err)
	}
	if fo.interval <= 0 {
		return fmt.Errorf("--status-interval %s: want a positive duration", fo.interval)
	}
	if _, _, _, err := o.statusRemote(); err != nil {
		return err
	}
	if fo.signKey != "" {
		if _, err := readSigningKey(fo.signKey); err != nil {
			return err
		}
	}
	return nil
}

// startFleet starts publishing the node's report when --status-branch is
// set; nil when it is not.
func (o *options) startFleet(ctx context.Context, e *env, m *metrics.Metrics, apiURL string, fo fleetOptions) (*agent.Fleet, error) {
	if fo.branch == "" {
		return nil, nil
	}
	if err := o.checkFleet(fo); err != nil {
		return nil, err
	}
	remote, auth, ca, err := o.statusRemote()
	if err != nil {
		return nil, err
	}
	b := &fleet.Branch{Remote: remote, Name: fo.branch, Dir: filepath.Join(o.stateDir, "status"), Auth: auth, CABundle: ca}
	if fo.signKey != "" {
		if b.Signer, err = readSigningKey(fo.signKey); err != nil {
			return nil, err
		}
	}
	svc := e.rt.Service()
	f, err := e.agent.Fleet(agent.FleetOptions{
		Node: o.node, Branch: b, Interval: fo.interval, Heartbeat: max(fo.interval, fo.nodeLease/3), Timeout: o.fetchTimeout,
		Capacity: func(ctx context.Context) fleet.Capacity {
			nd, err := svc.Describe(ctx)
			if err != nil {
				return fleet.Capacity{Arch: runtime.GOARCH, OS: runtime.GOOS}
			}
			c := fleet.Capacity{Arch: nd.Labels["kubernetes.io/arch"], OS: runtime.GOOS, CPUVendor: nd.CPU.Vendor, CPUModel: nd.CPU.Model,
				Resources: nd.Capacity, Allocatable: nd.Allocatable, Labels: nd.Labels}
			if c.Arch == "" {
				c.Arch = runtime.GOARCH
			}
			return c
		},
		CA: func() string {
			b, err := os.ReadFile(filepath.Join(pkiDir(o.stateDir), pki.BundleFile))
			if err != nil {
				return ""
			}
			return string(b)
		},
		API:       apiURL,
		Published: m.StatusPublished,
	})
	if err != nil {
		return nil, err
	}
	go f.Run(ctx)
	return f, nil
}

func newFleetCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "The fleet's nodes as their reports on the status branch show them",
		Args:  cobra.NoArgs,
	}
	var branch string
	st := &cobra.Command{
		Use:   "status",
		Short: "Print every VM and every node of the status branch (--source, --status-branch): needs read access to the remote, no agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.checkOutput(); err != nil {
				return err
			}
			if branch == "" {
				return errors.New("--status-branch is required")
			}
			remote, auth, ca, err := o.statusRemote()
			if err != nil {
				return err
			}
			reports, rev, readErr := fleet.Read(cmd.Context(), remote, branch, auth, ca)
			if reports == nil {
				return readErr
			}
			fs := fleetStatusOf(reports, rev, time.Now())
			if o.output == "table" {
				printFleetStatus(cmd.OutOrStdout(), fs)
			} else if err := printData(cmd.OutOrStdout(), o.output, fs); err != nil {
				return err
			}
			return readErr // a report that could not be read is named, after the others
		},
	}
	st.Flags().StringVar(&branch, "status-branch", "", "the branch the agents report to")
	cmd.AddCommand(st)
	return cmd
}

// fleetStatus is `fleet status`'s output.
type fleetStatus struct {
	// Revision is the status branch's commit read.
	Revision string         `json:"revision"`
	VMs      []fleetVMRow   `json:"vms"`
	Nodes    []fleetNodeRow `json:"nodes"`
}

type fleetVMRow struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Node      string   `json:"node"`
	State     string   `json:"state"`
	Running   bool     `json:"running"`
	Drift     []string `json:"drift,omitempty"`
}

type fleetNodeRow struct {
	Node string    `json:"node"`
	Time time.Time `json:"time"`
	// AgeSeconds is how old the report was when read.
	AgeSeconds int64    `json:"ageSeconds"`
	Applied    string   `json:"applied,omitempty"`
	Fetched    string   `json:"fetched,omitempty"`
	VMs        int      `json:"vms"`
	Errors     []string `json:"errors,omitempty"`
}

func fleetStatusOf(reports map[string]fleet.Report, rev string, now time.Time) fleetStatus {
	fs := fleetStatus{Revision: rev, VMs: []fleetVMRow{}, Nodes: []fleetNodeRow{}}
	for _, r := range reports {
		fs.Nodes = append(fs.Nodes, fleetNodeRow{Node: r.Node, Time: r.Time, AgeSeconds: int64(now.Sub(r.Time).Seconds()),
			Applied: r.Revisions.Applied, Fetched: r.Revisions.Fetched, VMs: len(r.VMs), Errors: r.Errors})
		for _, v := range r.VMs {
			fs.VMs = append(fs.VMs, fleetVMRow{Namespace: v.Namespace, Name: v.Name, Node: r.Node, State: v.State, Running: v.Running, Drift: v.Drift})
		}
	}
	slices.SortFunc(fs.Nodes, func(a, b fleetNodeRow) int { return strings.Compare(a.Node, b.Node) })
	slices.SortFunc(fs.VMs, func(a, b fleetVMRow) int {
		return strings.Compare(a.Namespace+"/"+a.Name+"/"+a.Node, b.Namespace+"/"+b.Name+"/"+b.Node)
	})
	return fs
}

func printFleetStatus(w io.Writer, fs fleetStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tNODE\tSTATE\tDRIFT")
	for _, v := range fs.VMs {
		drift := "-"
		if len(v.Drift) > 0 {
			drift = strings.Join(v.Drift, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Namespace, v.Name, v.Node, v.State, drift)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREPORTED\tAPPLIED\tFETCHED\tVMS\tERRORS")
	for _, n := range fs.Nodes {
		errs := "-"
		if len(n.Errors) > 0 {
			errs = strings.Join(n.Errors, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s ago\t%s\t%s\t%d\t%s\n", n.Node, duration.HumanDuration(time.Duration(n.AgeSeconds)*time.Second),
			shortRevision(n.Applied), shortRevision(n.Fetched), n.VMs, errs)
	}
	tw.Flush()
}

// statusBranchLine is `status`'s view of the last publish.
func statusBranchLine(sb status.StatusBranch) string {
	line := sb.Branch + ": "
	if sb.LastPublish == nil {
		line += "not published yet"
	} else {
		line += fmt.Sprintf("published %s (commit %.12s), %d nodes reporting", sb.LastPublish.Local().Format(time.RFC3339), sb.Commit, sb.Nodes)
	}
	if sb.Error != "" {
		line += "; last attempt failed: " + sb.Error
	}
	return line
}

// shortRevision is "main@sha1:0123456789ab": enough to tell commits apart
// in a table.
func shortRevision(rev string) string {
	if rev == "" {
		return "-"
	}
	if i := strings.LastIndex(rev, "sha1:"); i >= 0 && len(rev) > i+5+12 {
		return rev[:i+5+12]
	}
	return rev
}
