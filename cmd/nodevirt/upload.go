package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cheggaaa/pb/v3"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	cdiv1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/nodevirt/nodevirt/internal/api"
	"github.com/nodevirt/nodevirt/internal/status"
)

// uploadFlags are image-upload's flags, virtctl's names and meanings.
type uploadFlags struct {
	imagePath    string
	noCreate     bool
	size         string
	insecure     bool
	proxyURL     string
	blockVolume  bool
	storageClass string
	waitSecs     uint
	retry        uint
	// poll is how often the DataVolume's phase is read; backoff is the
	// longest pause before a retry.
	poll, backoff time.Duration
}

// annUploadPodReady is CDI's claim annotation: the upload server takes
// data (the agent sets it when the DataVolume takes an upload).
const annUploadPodReady = "cdi.kubevirt.io/storage.pod.ready"

// uploadProcessingWait bounds the wait for the DataVolume to show the
// upload's outcome once every byte was sent (virtctl's 24 hours).
const uploadProcessingWait = 24 * time.Hour

func newImageUploadCmd(o *options) *cobra.Command {
	f := uploadFlags{poll: 2 * time.Second, backoff: 3 * time.Second}
	cmd := &cobra.Command{
		Use:   "image-upload dv NAME --image-path FILE [--no-create] [--size SIZE]",
		Short: "Upload a disk image (raw, qcow2, iso, gz, xz) into an upload DataVolume of the source, as virtctl image-upload does",
		Long: `Upload a disk image into a DataVolume with spec.source.upload, through CDI's
upload protocol: on the agent's host through its socket in --state, or
remotely through --uploadproxy-url (default --server) with --token-file.

The DataVolume must be in the source: git is the source of truth, so a
missing one is not created here. Without --no-create the command prints
the DataVolume to commit (sized by --size) and exits non-zero; commit it,
let the agent apply it, and run again with --no-create.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := uploadTarget(args)
			if err != nil {
				return err
			}
			return o.imageUpload(cmd, f, name)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.imagePath, "image-path", "", "the image file to upload (raw, qcow2, iso, or one of them compressed with gz or xz)")
	fl.BoolVar(&f.noCreate, "no-create", false, "upload into the DataVolume the source holds; without it a DataVolume missing from the source is printed to commit")
	fl.StringVar(&f.size, "size", "", "the DataVolume's size (e.g. 10Gi) in the manifest printed to commit")
	fl.BoolVar(&f.insecure, "insecure", false, "do not verify the agent's certificate")
	fl.StringVar(&f.proxyURL, "uploadproxy-url", "", "the agent's HTTPS address to upload to (default --server)")
	fl.BoolVar(&f.blockVolume, "block-volume", false, "the printed DataVolume has volumeMode Block")
	fl.StringVar(&f.storageClass, "storage-class", "", "the printed DataVolume's storage class")
	fl.UintVar(&f.waitSecs, "wait-secs", 300, "seconds to wait for the DataVolume to take the upload")
	fl.UintVar(&f.retry, "retry", 5, "times to send the image again (from its first byte) after a failed attempt")
	return cmd
}

// uploadTarget reads virtctl's "dv NAME" or "dv/NAME".
func uploadTarget(args []string) (string, error) {
	kind, name := args[0], ""
	if len(args) == 2 {
		name = args[1]
	} else if k, n, ok := strings.Cut(args[0], "/"); ok {
		kind, name = k, n
	}
	switch strings.ToLower(kind) {
	case "dv", "datavolume":
	case "pvc", "persistentvolumeclaim":
		return "", errors.New("nodevirt uploads into DataVolumes only (spec.source.upload): use dv NAME")
	default:
		return "", fmt.Errorf("want dv NAME (or dv/NAME), not %q", strings.Join(args, " "))
	}
	if name == "" {
		return "", errors.New("want dv NAME: the DataVolume's name is missing")
	}
	return name, nil
}

func (o *options) imageUpload(cmd *cobra.Command, f uploadFlags, name string) error {
	ctx := cmd.Context()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	ns := o.namespace
	if f.imagePath == "" {
		return errors.New("--image-path is required: the image file to upload")
	}
	img, err := os.Open(f.imagePath)
	if err != nil {
		return fmt.Errorf("--image-path: %w", err)
	}
	defer img.Close()
	fi, err := img.Stat()
	if err != nil {
		return fmt.Errorf("--image-path: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("--image-path %s is not a regular file", f.imagePath)
	}
	if f.size != "" {
		if _, err := resource.ParseQuantity(f.size); err != nil {
			return fmt.Errorf("--size %q: %w", f.size, err)
		}
	}
	if f.proxyURL != "" {
		if !strings.Contains(f.proxyURL, "://") {
			f.proxyURL = "https://" + f.proxyURL // as virtctl
		}
		if o.client.server == "" {
			o.client.server = f.proxyURL
		}
	}
	o.client.creds.Insecure = f.insecure
	c, err := o.runningAgent(ctx)
	if err != nil {
		return err
	}
	if c == nil {
		return fmt.Errorf("no agent runs on the state directory %s: image-upload needs the running agent (nodevirt run), or --uploadproxy-url", o.stateDir)
	}

	dv, _, found, err := uploadDataVolume(ctx, c, ns, name)
	if err != nil {
		return err
	}
	if !found {
		if f.noCreate {
			return fmt.Errorf("DataVolume %s/%s is not in the source: with --no-create it must be committed first", ns, name)
		}
		if f.size == "" {
			return errors.New("when creating a resource, the size must be specified")
		}
		manifest, err := uploadManifest(ns, name, f)
		if err != nil {
			return err
		}
		out.Write(manifest)
		fmt.Fprintf(errOut, "DataVolume %s/%s is not in the source, and nodevirt creates nothing git does not hold: commit the manifest above, let the agent apply it, then run this again with --no-create\n", ns, name)
		return exitCode(1)
	}
	// The agent gives tokens for its upload DataVolumes only: its refusal
	// says the DataVolume imports from elsewhere.
	if dv.Spec.Source != nil && dv.Spec.Source.Upload == nil {
		return fmt.Errorf("DataVolume %s/%s is not an upload DataVolume: its spec.source is not upload", ns, name)
	}
	if _, err := c.UploadToken(ctx, ns, name); err != nil {
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Code == http.StatusNotFound {
			return fmt.Errorf("DataVolume %s/%s is not an upload DataVolume (spec.source.upload): %w", ns, name, err)
		}
		return fmt.Errorf("upload token for DataVolume %s/%s: %w", ns, name, err)
	}
	if dv.Status.Phase == cdiv1.Succeeded {
		return fmt.Errorf("DataVolume %s/%s already finished uploading (phase Succeeded)", ns, name)
	}

	if err := waitUploadReady(ctx, out, c, ns, name, f); err != nil {
		return err
	}
	// A failure the DataVolume shows from an earlier attempt is not this
	// upload's outcome.
	dv, _, _, err = uploadDataVolume(ctx, c, ns, name)
	if err != nil {
		return err
	}
	earlier := failure(dv)
	uploadURL := ""
	if f.proxyURL != "" && f.proxyURL != o.client.server {
		uploadURL = f.proxyURL
	}
	if err := sendImage(ctx, out, c, uploadURL, ns, name, img, fi.Size(), f); err != nil {
		return err
	}
	fmt.Fprintln(out, "Uploading data completed successfully, waiting for processing to complete, you can hit ctrl-c without interrupting the progress")
	return waitProcessed(ctx, out, c, ns, name, earlier, f)
}

// uploadDataVolume is the DataVolume and its claim as the agent reports
// them.
func uploadDataVolume(ctx context.Context, c *api.Client, ns, name string) (cdiv1.DataVolume, *corev1.PersistentVolumeClaim, bool, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return cdiv1.DataVolume{}, nil, false, err
	}
	return findUpload(st, ns, name)
}

func findUpload(st status.Node, ns, name string) (cdiv1.DataVolume, *corev1.PersistentVolumeClaim, bool, error) {
	var claim *corev1.PersistentVolumeClaim
	for i, p := range st.PersistentVolumeClaims {
		if p.Namespace == ns && p.Name == name {
			claim = &st.PersistentVolumeClaims[i]
		}
	}
	for _, dv := range st.DataVolumes {
		if dv.Namespace == ns && dv.Name == name {
			return dv, claim, true, nil
		}
	}
	return cdiv1.DataVolume{}, nil, false, nil
}

// uploadManifest is the DataVolume to commit: an upload source and the
// requested size, the class and the volume mode asked for.
func uploadManifest(ns, name string, f uploadFlags) ([]byte, error) {
	storage := map[string]any{"resources": map[string]any{"requests": map[string]any{"storage": f.size}}}
	if f.storageClass != "" {
		storage["storageClassName"] = f.storageClass
	}
	if f.blockVolume {
		storage["volumeMode"] = string(corev1.PersistentVolumeBlock)
	}
	dv := map[string]any{
		"apiVersion": cdiv1.SchemeGroupVersion.String(),
		"kind":       "DataVolume",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"source":  map[string]any{"upload": map[string]any{}},
			"storage": storage,
		},
	}
	return yaml.Marshal(dv)
}

// waitUploadReady polls until the DataVolume takes the upload (its claim
// says the upload server is ready, as CDI's does), at most --wait-secs.
func waitUploadReady(ctx context.Context, out io.Writer, c *api.Client, ns, name string, f uploadFlags) error {
	deadline := time.Now().Add(time.Duration(f.waitSecs) * time.Second)
	said := false
	for {
		dv, claim, found, err := uploadDataVolume(ctx, c, ns, name)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("DataVolume %s/%s left the source while waiting for it", ns, name)
		}
		if dv.Status.Phase == cdiv1.UploadReady || (claim != nil && claim.Annotations[annUploadPodReady] == "true") {
			if said {
				fmt.Fprintln(out, "DataVolume ready for the upload")
			}
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("DataVolume %s/%s is not ready for the upload after %d seconds (phase %s)", ns, name, f.waitSecs, orNone(string(dv.Status.Phase)))
		}
		if !said {
			fmt.Fprintf(out, "Waiting for DataVolume %s/%s to take the upload (phase %s)...\n", ns, name, orNone(string(dv.Status.Phase)))
			said = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.poll):
		}
	}
}

// sendImage uploads the image with a progress bar, from its first byte
// again after a failed attempt (virtctl's --retry), with a new token when
// the agent refused the last one.
func sendImage(ctx context.Context, out io.Writer, c *api.Client, uploadURL, ns, name string, img *os.File, size int64, f uploadFlags) error {
	tok, err := c.UploadToken(ctx, ns, name)
	if err != nil {
		return fmt.Errorf("upload token for DataVolume %s/%s: %w", ns, name, err)
	}
	refreshed := 0
	for attempt := uint(0); ; attempt++ {
		if _, err := img.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("--image-path: %w", err)
		}
		bar := pb.New64(size).SetTemplate(pb.Full).Set(pb.Bytes, true).SetWriter(out).Start()
		// The reader hides the file's Close: the transport closes the
		// body it sent, and a retry sends the file again.
		err = c.Upload(ctx, uploadURL, tok, struct{ io.Reader }{bar.NewProxyReader(struct{ io.Reader }{img})}, size, false)
		bar.Finish()
		if ret, _ := bar.Get(pb.ReturnSymbol).(string); ret != "\r" {
			fmt.Fprintln(out) // not a terminal: the bar ended no line
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt >= f.retry || !retryable(err) {
			if ae := (*api.APIError)(nil); errors.As(err, &ae) {
				return err // the agent's answer names the DataVolume
			}
			return fmt.Errorf("upload into DataVolume %s/%s: %w", ns, name, err)
		}
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Code == http.StatusUnauthorized && refreshed < 3 {
			refreshed++
			if tok, err = c.UploadToken(ctx, ns, name); err != nil {
				return fmt.Errorf("upload token for DataVolume %s/%s: %w", ns, name, err)
			}
		}
		pause := f.backoff/2 + rand.N(f.backoff/2+1)
		fmt.Fprintf(out, "Upload failed (%v); sending again from the start in %s (attempt %d of %d)\n", err, pause.Round(100*time.Millisecond), attempt+2, f.retry+1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// retryable: a dropped connection, a busy or restarting agent, a token
// that expired; not an image the agent refused, nor a finished upload.
func retryable(err error) bool {
	var ae *api.APIError
	if errors.As(err, &ae) {
		return ae.Code == http.StatusUnauthorized || ae.Code == http.StatusServiceUnavailable || ae.Code >= 500
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

// waitProcessed polls the DataVolume until it is Succeeded, or Failed
// otherwise than it was before (earlier).
func waitProcessed(ctx context.Context, out io.Writer, c *api.Client, ns, name, earlier string, f uploadFlags) error {
	deadline := time.Now().Add(uploadProcessingWait)
	for {
		dv, _, found, err := uploadDataVolume(ctx, c, ns, name)
		if err != nil {
			return err
		}
		switch {
		case !found:
			return fmt.Errorf("DataVolume %s/%s left the source while processing the upload", ns, name)
		case dv.Status.Phase == cdiv1.Succeeded:
			fmt.Fprintln(out, "Processing completed successfully")
			return nil
		case dv.Status.Phase == cdiv1.Failed && failure(dv) != earlier:
			return fmt.Errorf("processing the upload into DataVolume %s/%s failed: %s", ns, name, failureReason(dv))
		case time.Now().After(deadline):
			return fmt.Errorf("DataVolume %s/%s is still %s after %s", ns, name, dv.Status.Phase, uploadProcessingWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.poll):
		}
	}
}

// failure tells a failed DataVolume's failure from another: its reason
// and when it came; "" when it has not failed.
func failure(dv cdiv1.DataVolume) string {
	if dv.Status.Phase != cdiv1.Failed {
		return ""
	}
	for _, c := range dv.Status.Conditions {
		if c.Type == cdiv1.DataVolumeRunning {
			return c.LastTransitionTime.String() + " " + c.Message
		}
	}
	return failureReason(dv)
}

// failureReason is the message of a failed DataVolume's conditions.
func failureReason(dv cdiv1.DataVolume) string {
	for _, c := range dv.Status.Conditions {
		if c.Message != "" && c.Type == cdiv1.DataVolumeRunning {
			return c.Message
		}
	}
	for _, c := range dv.Status.Conditions {
		if c.Message != "" {
			return c.Message
		}
	}
	return "no reason given"
}
