package desired

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nodevirt/nodevirt/manifests"
	"github.com/nodevirt/nodevirt/manifests/diag"
	"github.com/nodevirt/nodevirt/reconciler/desired/domain"
)

// Network resolution problems a VM can have (besides domain.ErrUnsupported).
var (
	// ErrNADNotFound: spec.networks[].multus.networkName names a
	// NetworkAttachmentDefinition the repository does not hold.
	ErrNADNotFound = errors.New("the NetworkAttachmentDefinition is not in the repository")
	// ErrNADInvalid: the NetworkAttachmentDefinition has errors of its own.
	ErrNADInvalid = errors.New("the NetworkAttachmentDefinition has errors of its own")
)

// defaultCNIBridge is the CNI bridge plugin's bridge when "bridge" is unset.
const defaultCNIBridge = "cni0"

// networkResolver turns multus network references into host bridges
// (SPEC VM-5). Each NetworkAttachmentDefinition is parsed once per build, and
// its own warnings are reported once, on it.
type networkResolver struct {
	nads   map[manifests.Ref]*manifests.Object
	parsed map[manifests.Ref]*parsedNAD
	diags  diag.List // NetworkAttachmentDefinition diagnostics
}

type parsedNAD struct {
	att domain.NetworkAttachment
	// unsupported says why nodevirt cannot plug a guest in ("" if it can).
	unsupported string
}

func newNetworkResolver(set *manifests.Set) *networkResolver {
	r := &networkResolver{nads: map[manifests.Ref]*manifests.Object{}, parsed: map[manifests.Ref]*parsedNAD{}}
	for _, o := range set.OfKind("NetworkAttachmentDefinition") {
		if _, dup := r.nads[o.Ref]; !dup {
			r.nads[o.Ref] = o
		}
	}
	return r
}

// resolve returns the attachments of the multus networks the converter maps:
// those whose interface uses the bridge binding. Other multus networks are
// refused by the converter's support table and need no definition.
func (r *networkResolver) resolve(o *manifests.Object, spec *kubevirtv1.VirtualMachineInstanceSpec, prefix string) (map[string]domain.NetworkAttachment, diag.List) {
	bridged := map[string]bool{}
	for _, iface := range spec.Domain.Devices.Interfaces {
		if iface.Bridge != nil && iface.State != kubevirtv1.InterfaceStateAbsent {
			bridged[iface.Name] = true
		}
	}
	var (
		out   map[string]domain.NetworkAttachment
		diags diag.List
	)
	for i, n := range spec.Networks {
		if n.Multus == nil || n.Multus.Default || !bridged[n.Name] {
			continue
		}
		path := fmt.Sprintf("%s.networks[%d].multus.networkName", prefix, i)
		ref := manifests.Ref{Kind: "NetworkAttachmentDefinition", Namespace: o.Ref.Namespace, Name: n.Multus.NetworkName}
		if ns, name, ok := strings.Cut(n.Multus.NetworkName, "/"); ok {
			ref.Namespace, ref.Name = ns, name
		}
		nadObj, ok := r.nads[ref]
		switch {
		case !ok:
			diags = append(diags, o.Errorf(path, "%w: %s", ErrNADNotFound, ref))
			continue
		case !nadObj.Valid || nadObj.Value == nil:
			diags = append(diags, o.Errorf(path, "%w: %s (%s:%d)", ErrNADInvalid, ref, nadObj.File, nadObj.Line))
			continue
		}
		p := r.parse(nadObj)
		if p.unsupported != "" {
			diags = append(diags, o.Errorf(path, "%w: %s %s", domain.ErrUnsupported, ref, p.unsupported))
			continue
		}
		if out == nil {
			out = map[string]domain.NetworkAttachment{}
		}
		out[n.Name] = p.att
	}
	return out, diags
}

// parse reads a NetworkAttachmentDefinition's CNI configuration: a single
// plugin, or a configuration list whose first plugin makes the interface.
func (r *networkResolver) parse(o *manifests.Object) *parsedNAD {
	if p, ok := r.parsed[o.Ref]; ok {
		return p
	}
	p := &parsedNAD{att: domain.NetworkAttachment{Object: o.Ref.String()}}
	r.parsed[o.Ref] = p
	nad := o.Value.(*nadv1.NetworkAttachmentDefinition)
	ignore := func(format string, args ...any) {
		r.diags = append(r.diags, o.Warnf("spec.config", "%w: "+format, append([]any{domain.ErrIgnored}, args...)...))
	}

	var conf map[string]any
	if err := json.Unmarshal([]byte(nad.Spec.Config), &conf); err != nil {
		// manifests reports it; the object is then invalid and never parsed.
		p.unsupported = "has a configuration that is not JSON"
		return p
	}
	plugins := []any{conf}
	if list, ok := conf["plugins"]; ok {
		l, isList := list.([]any)
		if !isList || len(l) == 0 {
			p.unsupported = `has a "plugins" list that is empty or not a list`
			return p
		}
		plugins = l
	}
	first, _ := plugins[0].(map[string]any)
	typ, _ := first["type"].(string)
	switch typ {
	case "bridge", "cnv-bridge":
	default:
		p.unsupported = fmt.Sprintf("uses CNI plugin %q; nodevirt maps bridge and cnv-bridge (a host bridge)", typ)
		return p
	}

	p.att.Bridge = defaultCNIBridge
	if b, ok := first["bridge"]; ok {
		s, isString := b.(string)
		if !isString || s == "" {
			p.unsupported = `has a "bridge" that is not a bridge name`
			return p
		}
		p.att.Bridge = s
	}
	var ok bool
	if p.att.VLAN, ok = cniUint(first, "vlan", 4094); !ok {
		p.unsupported = `has a "vlan" that is not a VLAN ID (0-4094)`
		return p
	}
	if p.att.MTU, ok = cniUint(first, "mtu", 65535); !ok {
		p.unsupported = `has an "mtu" that is not a number`
		return p
	}
	// Settings of the bridge plugin that configure the pod's side of the
	// link (IPAM, gateway, NAT, hairpin…) have no counterpart when the
	// guest sits directly on the host bridge.
	for _, k := range sortedKeys(first) {
		switch k {
		case "cniVersion", "name", "type", "bridge", "vlan", "mtu":
		default:
			ignore("CNI %s setting %q has no effect on a host bridge", typ, k)
		}
	}
	for i, raw := range plugins[1:] {
		plugin, _ := raw.(map[string]any)
		t, _ := plugin["type"].(string)
		switch t {
		case "tuning", "cnv-tuning":
			// The seed uses cnv-tuning so a custom MAC address is allowed;
			// nodevirt sets interfaces[].macAddress on the domain itself.
			var extra []string
			for _, k := range sortedKeys(plugin) {
				switch k {
				case "cniVersion", "name", "type":
				case "capabilities":
					if c, _ := plugin[k].(map[string]any); len(c) == 1 && c["mac"] != nil {
						continue
					}
					extra = append(extra, k)
				default:
					extra = append(extra, k)
				}
			}
			if len(extra) > 0 {
				ignore("CNI %s settings %s (plugins[%d]) have no effect on a host bridge; only custom MAC addresses are honoured, through interfaces[].macAddress",
					t, strings.Join(quoted(extra), ", "), i+1)
			}
		default:
			ignore("chained CNI plugin %q (plugins[%d]) has no effect on a host bridge", t, i+1)
		}
	}
	return p
}

// cniUint reads an optional non-negative integer ≤ max; JSON numbers decode
// as float64.
func cniUint(m map[string]any, key string, maxValue uint) (uint, bool) {
	v, ok := m[key]
	if !ok {
		return 0, true
	}
	f, isNumber := v.(float64)
	if !isNumber || f < 0 || f > float64(maxValue) || f != float64(uint(f)) {
		return 0, false
	}
	return uint(f), true
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func quoted(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}
