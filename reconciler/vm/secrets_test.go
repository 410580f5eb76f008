package vm_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdomanski/iso9660"

	"github.com/nodevirt/nodevirt/internal/secrets"
	"github.com/nodevirt/nodevirt/reconciler/desired"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
	"github.com/nodevirt/nodevirt/reconciler/vm"
)

const secretValue = "hunter2-never-printed"

func secretYAML(value string) string {
	return `apiVersion: v1
kind: Secret
metadata: {name: guest, namespace: default}
stringData:
  userdata: "#cloud-config\npassword: ` + value + `\n"
  token: ` + value + `
`
}

const configMapYAML = `apiVersion: v1
kind: ConfigMap
metadata: {name: app, namespace: default}
data:
  option1: value1
  Caddyfile: ":80"
`

const secretVMYAML = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: web, namespace: default}
spec:
  runStrategy: Always
  template:
    spec:
      terminationGracePeriodSeconds: 0
      domain:
        memory: {guest: 64Mi}
        devices:
          disks:
          - {name: seed, disk: {bus: virtio}}
          - {name: app, disk: {}, serial: APPCONFIG}
          - {name: token, disk: {}}
      volumes:
      - name: seed
        cloudInitNoCloud: {secretRef: {name: guest}}
      - name: app
        configMap: {name: app}
      - name: token
        secret: {secretName: guest}
`

// isoFiles reads an image back with a real ISO 9660 reader.
func isoFiles(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatal(err)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range children {
		if c.IsDir() {
			continue
		}
		b, err := io.ReadAll(c.Reader())
		if err != nil {
			t.Fatal(err)
		}
		out[c.Name()] = string(b)
	}
	return out
}

// Secrets and ConfigMaps from the repository become the VM's images; the
// Secret's value is in the images only: not in the plan, the rendered
// state, the diagnostics or the state records, and a changed value
// updates the VM.
func TestReconciler_secretsReachImagesOnly(t *testing.T) {
	h := newHost(t, vm.Config{SelfHeal: true})
	st := h.render("r1", secretYAML(secretValue), configMapYAML, secretVMYAML)
	if st.Diags.HasErrors() {
		t.Fatalf("render: %v", st.Diags.Err())
	}
	warned := false
	for _, d := range st.Diags {
		if errors.Is(d, desired.ErrSecretInGit) && d.Object == "Secret default/guest" && strings.Contains(d.Message, "VirtualMachine default/web") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning about the plain Secret in git: %v", st.Diags)
	}
	p, _ := h.apply(st)
	if got, want := kinds(p), "create default_web, start default_web"; got != want {
		t.Fatalf("plan: %s, want %s", got, want)
	}
	dir := filepath.Join(h.state, "disks", "default", "web")
	if got := isoFiles(t, filepath.Join(dir, "seed.iso"))["user-data"]; got != "#cloud-config\npassword: "+secretValue+"\n" {
		t.Errorf("seed user-data = %q", got)
	}
	// Caddyfile needs a Rock Ridge name (xorrisofs), option1 does not.
	if got := isoFiles(t, filepath.Join(dir, "app.iso")); got["option1"] != "value1" || got["Caddyfile"] != ":80" || len(got) != 2 {
		t.Errorf("configMap image = %v", got)
	}
	if got := isoFiles(t, filepath.Join(dir, "token.iso"))["token"]; got != secretValue {
		t.Errorf("secret image token = %q", got)
	}

	printed, err := json.Marshal(struct {
		Plan  vm.Plan
		VMs   []*desired.VM
		Diags string
	}{p, st.VMs, fmt.Sprint(st.Diags)})
	if err != nil {
		t.Fatal(err)
	}
	// JSON writes bytes as base64: look for the files' contents that way too.
	leaks := []string{secretValue, base64.StdEncoding.EncodeToString([]byte(secretValue)),
		base64.StdEncoding.EncodeToString([]byte("#cloud-config\npassword: " + secretValue + "\n"))}
	stateDB, err := os.ReadFile(filepath.Join(filepath.Dir(h.state), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range leaks {
		if strings.Contains(string(printed), leak) {
			t.Errorf("the plan or rendered state carries the Secret's value (%s):\n%s", leak, printed)
		}
		if strings.Contains(string(stateDB), leak) {
			t.Errorf("the state database holds the Secret's value (%s)", leak)
		}
	}

	// A new value: the VM's definition changes and the image follows.
	st = h.render("r2", secretYAML(secretValue+"-2"), configMapYAML, secretVMYAML)
	p, _ = h.apply(st)
	if got := kinds(p); !strings.Contains(got, "default_web") {
		t.Fatalf("a changed Secret planned nothing for the VM: %q", got)
	}
	if got := isoFiles(t, filepath.Join(dir, "token.iso"))["token"]; got != secretValue+"-2" {
		t.Errorf("secret image after the change = %q", got)
	}

	// The Secret gone: the VM waits with its last good state, the error
	// names the VM, the field and the Secret; nothing else fails.
	st = h.render("r3", configMapYAML, secretVMYAML)
	var found bool
	for _, d := range st.Diags.Errors() {
		if errors.Is(d, domain.ErrMissingSource) && d.Object == "VirtualMachine default/web" &&
			d.Path == "spec.template.spec.volumes[0].cloudInitNoCloud.secretRef" && strings.Contains(d.Message, "Secret default/guest") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no error naming the missing Secret: %v", st.Diags.Err())
	}
	if _, ok := st.Invalid["default_web"]; !ok {
		t.Fatalf("the VM is not kept as invalid: %v", st.Invalid)
	}
	p, _ = h.apply(st)
	if got, want := kinds(p), "keep default_web"; got != want {
		t.Errorf("plan without the Secret: %s, want %s", got, want)
	}

	// The domain lost meanwhile: it is defined again from the state last
	// applied, whose record never held the Secret's values; the image
	// written from them is what the VM keeps.
	ctx := t.Context()
	if err := h.hv.Destroy(ctx, "default_web"); err != nil {
		t.Fatal(err)
	}
	if err := h.hv.Undefine(ctx, "default_web"); err != nil {
		t.Fatal(err)
	}
	p, _ = h.apply(h.render("r3", configMapYAML, secretVMYAML))
	if _, ok := h.domains()["default_web"]; !ok {
		t.Fatalf("the domain was not defined again from its last good state: %s", kinds(p))
	}
	if got := isoFiles(t, filepath.Join(dir, "token.iso"))["token"]; got != secretValue+"-2" {
		t.Errorf("secret image after redefining from the record = %q, want the last value", got)
	}

	// The secrets directory provides it: the VM is whole again.
	sd := filepath.Join(t.TempDir(), "secrets")
	if err := os.MkdirAll(filepath.Join(sd, "default", "guest"), 0o700); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"userdata": "#cloud-config\n", "token": "from-dir"} {
		if err := os.WriteFile(filepath.Join(sd, "default", "guest", k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.opt.Secrets = secrets.Dir{Dir: sd}
	st = h.render("r4", configMapYAML, secretVMYAML)
	if st.Diags.HasErrors() {
		t.Fatalf("render with the secrets directory: %v", st.Diags.Err())
	}
	h.apply(st)
	if got := isoFiles(t, filepath.Join(dir, "token.iso"))["token"]; got != "from-dir" {
		t.Errorf("secret image from the secrets directory = %q", got)
	}
}
