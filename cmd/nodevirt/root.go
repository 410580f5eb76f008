package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodevirt/nodevirt/source"
)

// options are the flags every command shares.
type options struct {
	source     string
	branch     string
	tag        string
	commit     string
	path       string
	libvirtURI string
	stateDir   string
	root       string
	node       string
	output     string
	namespace  string
	logLevel   string
	// logFormat is text (logfmt, for terminals) or json (for journald
	// and log shippers); logTo is where the log goes (nil: stderr).
	logFormat string
	logTo     io.Writer

	sshKeyFile     string
	knownHostsFile string
	caFile         string
	username       string
	passwordFile   string
	// fetchTimeout bounds one git fetch.
	fetchTimeout time.Duration
	// verifySignatures refuses git revisions not signed by a key of
	// verifyKeysDir; allowRewind accepts a branch tip that does not
	// descend from the last accepted commit.
	verifySignatures bool
	verifyKeysDir    string
	verifyMode       string
	allowRewind      bool

	allowPruneAll   bool
	pruneGuardShare float64
	parallelVMs     int

	cpuManager   bool
	reservedCPUs string

	// allowReboot is set by apply and run: reboot for staged kernel arguments.
	allowReboot bool

	secretsDir   string
	ageKeyFile   string
	allowedRoots []string
	// allowedHostDirs hold the host files VMs may use as disks and images.
	allowedHostDirs []string
	// allowedBlockDevices are host disks Block PersistentVolumes may name.
	allowedBlockDevices []string

	domainType string

	// client says how commands reach a running agent.
	client clientOptions

	// configPath is --config; configRead is the file read ("" for none)
	// and fromConfig the flags it set.
	configPath string
	configRead string
	fromConfig map[string]bool
}

func newRootCmd() *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:           "nodevirt",
		Short:         "Make this host's virtual machines match a git repository of KubeVirt manifests",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// The file first: a log format it sets is checked like a flag's.
			if err := o.applyConfig(cmd); err != nil {
				return err
			}
			return o.checkLog()
		},
	}
	host, _ := os.Hostname()
	f := root.PersistentFlags()
	f.StringVar(&o.configPath, "config", defaultConfigPath, "YAML file of settings: every flag, by its name (source: https://...), for the flags not given on the command line; the default may be absent, \"\" reads none (env "+configEnv+")")
	f.StringVar(&o.source, "source", ".", "manifests: a local directory, or a git URL (https://, ssh://, file://, or a bare repository path)")
	f.StringVar(&o.branch, "branch", "", "git branch to follow (default main)")
	f.StringVar(&o.tag, "tag", "", "git tag to check out")
	f.StringVar(&o.commit, "commit", "", "git commit to check out")
	f.StringVar(&o.path, "path", "", "sub-directory of the source holding the manifests")
	f.StringVar(&o.libvirtURI, "libvirt", "qemu:///system", "libvirt connection URI")
	f.StringVar(&o.stateDir, "state", "/var/lib/nodevirt", "state directory (agent database, disks, git checkouts)")
	f.StringVar(&o.root, "root", "/", "host root under which host paths (/etc, /sys, /dev) are read and written")
	f.StringVar(&o.node, "node", host, "node name (VMs with nodeSelector kubernetes.io/hostname run only on that node)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	f.StringVar(&o.namespace, "namespace", "default", "namespace for objects that name none")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text (key=value) or json (one object per line, for journald and log shippers)")
	f.StringVar(&o.sshKeyFile, "ssh-key-file", "", "git over ssh: private key file")
	f.StringVar(&o.knownHostsFile, "known-hosts-file", "", "git over ssh: known_hosts file (required with ssh)")
	f.StringVar(&o.caFile, "ca-file", "", "git over https: CA bundle")
	f.StringVar(&o.username, "username", "", "git over https: user name")
	f.StringVar(&o.passwordFile, "password-file", "", "git over https: file holding the password or token")
	f.DurationVar(&o.fetchTimeout, "fetch-timeout", time.Minute, "git fetch timeout")
	f.BoolVar(&o.verifySignatures, "verify-signatures", false, "refuse git revisions not signed by a key of --verify-keys-dir; the last verified revision stays applied")
	f.StringVar(&o.verifyKeysDir, "verify-keys-dir", "", "trusted signing keys: *.asc (armored OpenPGP) and *.pub (SSH public keys) files")
	f.StringVar(&o.verifyMode, "verify-mode", source.VerifyHead, "what --verify-signatures checks: head (the commit), tag (the annotated tag of --tag) or tagandhead (both)")
	f.BoolVar(&o.allowRewind, "allow-rewind", false, "accept a branch tip that does not descend from the last applied commit (force-push, reset); without it such a tip is refused unless it carries "+source.RewindMarker+" naming that commit")
	f.BoolVar(&o.allowPruneAll, "allow-prune-all", false, "confirm a revision whose deletes the prune guard holds")
	f.StringVar(&o.domainType, "domain-type", "auto", "libvirt domain type: auto (kvm when the CPU has vmx/svm and libvirt can run KVM domains, else qemu with a warning), kvm, or qemu (TCG emulation)")
	f.StringVar(&o.secretsDir, "secrets-dir", "/etc/nodevirt/secrets", "Secrets and ConfigMaps kept outside git (import credentials, CA bundles, VM volumes, cloud-init, SSH keys): <dir>/<namespace>/<name>/<key>; a Secret or ConfigMap in the repository wins over the one here")
	f.StringVar(&o.ageKeyFile, "sops-age-key-file", defaultAgeKeyFile(), "age identities (age-keygen's format, Flux's .agekey) that decrypt SOPS-encrypted manifests in the repository; default $SOPS_AGE_KEY_FILE, as sops reads it")
	f.StringArrayVar(&o.allowedRoots, "allowed-root", nil, "directory (under --root) where PersistentVolume paths may lie, besides the hostpath provisioner's and the state directory (repeatable)")
	f.StringArrayVar(&o.allowedBlockDevices, "allowed-block-device", nil, "host block device (or pattern, e.g. /dev/disk/by-id/wwn-*) a Block PersistentVolume's local.path may name, as written; it must resolve (through symlinks, under --root) to a block device. /dev/loopN PVs not listed are nodevirt's to create and attach; a loop device you attached yourself, listed here, is left to you (repeatable)")
	f.StringSliceVar(&o.allowedHostDirs, "allowed-host-dirs", nil, "directories (host paths under --root) where hostDisk files and local containerDisk images (file://, absolute path, oci:) may lie; empty refuses them all (repeatable, comma-separated)")
	f.BoolVar(&o.cpuManager, "cpu-manager", false, "enable the node's CPU-manager pool: VMs with dedicatedCpuPlacement get exclusive host CPUs (node label cpumanager=true)")
	f.StringVar(&o.reservedCPUs, "reserved-cpus", "0", "host CPUs kept out of the CPU-manager pool (kernel CPU list, e.g. 0,1 or 0-1)")
	f.Float64Var(&o.pruneGuardShare, "prune-guard-share", 1, "hold a revision that deletes at least this share of the VMs nodevirt owns here, or removes that share of the host files and units it wrote (1 = only all of them)")
	f.IntVar(&o.parallelVMs, "parallel-vms", 0, "how many VMs an apply defines and starts at once, each VM's start right after its own define (0: two per CPU, at most 4; 1: one step at a time)")

	f.StringVar(&o.client.server, "server", "", "talk to the agent at this HTTPS address (https://HOST:9443) instead of the one on --state's socket")
	f.StringVar(&o.client.creds.TokenFile, "token-file", "", "with --server: file holding a bearer token (nodevirt token create)")
	f.StringVar(&o.client.creds.CertFile, "client-certificate", "", "with --server: client certificate signed by the agent's CA (nodevirt certs issue-client), instead of a token")
	f.StringVar(&o.client.creds.KeyFile, "client-key", "", "with --server: the client certificate's key")
	f.StringVar(&o.client.creds.CAFile, "certificate-authority", "", "with --server: the agent's CA bundle (<state>/pki/ca.crt on the host)")

	root.AddCommand(
		newStatusCmd(o), newGetCmd(o), newFleetCmd(o),
		newVMActionCmd(o, "start", "Start a VM (a Halted VM runs until stopped; the start is kept across agent restarts)"),
		newVMActionCmd(o, "stop", "Stop a VM (an Always or RerunOnFailure VM stays stopped until started; kept across agent restarts)"),
		newVMActionCmd(o, "restart", "Restart a running VM"),
		newVMActionCmd(o, "pause", "Pause a running VM"),
		newVMActionCmd(o, "unpause", "Unpause a paused VM"),
		newAddVolumeCmd(o), newRemoveVolumeCmd(o),
		newReconcileCmd(o), newSuspendCmd(o, true), newSuspendCmd(o, false), newDashboardCmd(o),
		newValidateCmd(o),
		newRenderCmd(o),
		newPlanCmd(o),
		newApplyCmd(o),
		newDriftCmd(o),
		newRunCmd(o),
		newDemoCmd(o),
		newNodeCmd(o), newHostCmd(o),
		newStorageCmd(o), newImageUploadCmd(o),
		newStateCmd(o),
		newVersionCmd(o),
		newTokenCmd(o), newCertsCmd(o),
		newConfigCmd(o),
		newInstallCmd(o),
	)
	return root
}

// checkLog refuses a log level or format nodevirt does not know, before
// anything runs.
func (o *options) checkLog() error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	switch o.logFormat {
	case "text", "json":
		return nil
	}
	return fmt.Errorf("--log-format %q: want text or json", o.logFormat)
}

func (o *options) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	w := o.logTo
	if w == nil {
		w = os.Stderr
	}
	hopt := &slog.HandlerOptions{Level: lvl}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, hopt))
	}
	return slog.New(slog.NewTextHandler(w, hopt))
}

func (o *options) checkOutput() error {
	switch o.output {
	case "table", "json", "yaml":
		return nil
	}
	return fmt.Errorf("--output %q: want table, json or yaml", o.output)
}

// defaultAgeKeyFile is sops' own SOPS_AGE_KEY_FILE when set.
func defaultAgeKeyFile() string {
	if f := os.Getenv("SOPS_AGE_KEY_FILE"); f != "" {
		return f
	}
	return "/etc/nodevirt/age.agekey"
}
