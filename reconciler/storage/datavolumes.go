package storage

import (
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	"github.com/nodevirt/nodevirt/manifests"
)

func (b *builder) dataVolume(o *manifests.Object, ns, name string, spec *cdiv1beta1.DataVolumeSpec, ann map[string]string, p string) *Claim {
	obj := "DataVolume " + ns + "/" + name
	c := &Claim{Namespace: ns, Name: name, Kind: "DataVolume", Object: obj, VolumeMode: Filesystem, File: o.File, Line: o.Line}
	switch {
	case spec.SourceRef != nil && spec.Source == nil:
		b.errorf(o, p+".sourceRef", ErrDVSourceRef, "")
	case (spec.Source == nil) == (spec.SourceRef == nil):
		b.errorf(o, p+".source", ErrDVSource, "")
	default:
		c.Source = b.source(o, ns, p+".source", spec.Source)
	}
	if spec.ContentType == cdiv1beta1.DataVolumeArchive {
		b.errorf(o, p+".contentType", ErrDVArchive, "")
	}
	if len(spec.Checkpoints) > 0 {
		b.errorf(o, p+".checkpoints", ErrDVCheckpoints, "")
	}
	var (
		className *string
		api       string
		modes     []corev1.PersistentVolumeAccessMode
		mode      *corev1.PersistentVolumeMode
		requests  corev1.ResourceList
		cp        string
	)
	// "storage:" or "storage: {}" with nothing under it decodes to no
	// storage at all, but CDI takes it as the storage API with every field
	// defaulted (a clone's size from its source); the same for pvc.
	pvc, storage := spec.PVC, spec.Storage
	if pvc == nil && storage == nil {
		switch {
		case written(o, p, "storage"):
			storage = &cdiv1beta1.StorageSpec{}
		case written(o, p, "pvc"):
			pvc = &corev1.PersistentVolumeClaimSpec{}
		}
	}
	switch {
	case (pvc == nil) == (storage == nil):
		b.errorf(o, p, ErrDVPVCStorage, "")
		return nil
	case pvc != nil:
		api, cp = "pvc", p+".pvc"
		className, modes, mode, requests = pvc.StorageClassName, pvc.AccessModes, pvc.VolumeMode, pvc.Resources.Requests
		if len(modes) == 0 {
			b.errorf(o, cp+".accessModes", ErrPVCAccessModes, "")
		}
		if pvc.Selector != nil {
			c.Selector = pvc.Selector.MatchLabels
		}
		c.VolumeName = pvc.VolumeName
	default:
		api, cp = "storage", p+".storage"
		className, modes, mode, requests = storage.StorageClassName, storage.AccessModes, storage.VolumeMode, storage.Resources.Requests
		if storage.Selector != nil {
			c.Selector = storage.Selector.MatchLabels
		}
		c.VolumeName = storage.VolumeName
	}
	c.AccessModes = b.accessModes(o, cp+".accessModes", modes, false)
	if mode != nil {
		c.VolumeMode = string(*mode)
		if c.VolumeMode != Filesystem && c.VolumeMode != Block {
			b.errorf(o, cp+".volumeMode", ErrVolumeMode, "got %q", c.VolumeMode)
		}
	}
	// A clone through the storage API may leave the size to the source.
	cloneNoSize := api == "storage" && c.Source != nil && c.Source.Kind == SourcePVC
	c.Request = b.request(o, cp+".resources.requests.storage", requests, !cloneNoSize)
	cls, cname, ok := b.class(o, cp+".storageClassName", className)
	if !ok {
		return nil
	}
	c.Class = cname
	if api == "storage" && (len(modes) == 0 || mode == nil) {
		b.fromProfile(o, cp, c, cls, len(modes) == 0, mode == nil)
	}
	if cls != nil && isHostPath(cls.Provisioner) && c.VolumeMode == Block {
		b.errorf(o, cp+".volumeMode", ErrHostPathBlock, "")
	}
	b.size(c, api, cls)
	c.Preallocate = b.st.Settings.Preallocation
	if spec.Preallocation != nil {
		c.Preallocate = *spec.Preallocation
	}
	c.Immediate = cls == nil || cls.BindingMode == Immediate
	c.pinnedTo = ann[AnnotationProvisionOnNode]
	c.ScratchClass = b.scratchClass(cname)
	c.Limits = b.st.Settings.Limits
	return c
}

// written reports whether field of the object at p is in the document,
// even with no value: its position is its own, not p's.
func written(o *manifests.Object, p, field string) bool {
	l, c := o.Pos(p + "." + field)
	pl, pc := o.Pos(p)
	return l != pl || c != pc
}

func (b *builder) source(o *manifests.Object, ns, p string, s *cdiv1beta1.DataVolumeSource) *Source {
	n := 0
	for _, set := range []bool{s.HTTP != nil, s.S3 != nil, s.GCS != nil, s.Registry != nil, s.PVC != nil, s.Upload != nil, s.Blank != nil, s.Imageio != nil, s.VDDK != nil, s.Snapshot != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		b.errorf(o, p, ErrDVSourceKind, "%d set", n)
		return nil
	}
	switch {
	case s.HTTP != nil:
		h := s.HTTP
		src := &Source{Kind: SourceHTTP, URL: h.URL, SecretRef: h.SecretRef, CertConfigMap: h.CertConfigMap,
			Headers: h.ExtraHeaders, SecretHeaders: h.SecretExtraHeaders, Checksum: h.Checksum}
		if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			b.errorf(o, p+".http.url", ErrDVURL, "got %q", h.URL)
		}
		if h.Checksum != "" && !validChecksum(h.Checksum) {
			b.errorf(o, p+".http.checksum", ErrDVChecksum, "got %q", h.Checksum)
		}
		b.credentials(o, ns, p+".http", src)
		return src
	case s.Registry != nil:
		r := s.Registry
		src := &Source{Kind: SourceRegistry}
		if r.ImageStream != nil {
			b.errorf(o, p+".registry.imageStream", ErrDVRegistryStream, "")
		}
		if r.URL != nil {
			src.URL = *r.URL
		}
		host, ok := strings.CutPrefix(src.URL, "docker://")
		if !ok || host == "" {
			b.errorf(o, p+".registry.url", ErrDVRegistryURL, "got %q", src.URL)
		}
		host, _, _ = strings.Cut(host, "/")
		src.Insecure = slices.Contains(b.st.Settings.InsecureRegistries, host)
		if r.SecretRef != nil {
			src.SecretRef = *r.SecretRef
		}
		if r.CertConfigMap != nil {
			src.CertConfigMap = *r.CertConfigMap
		}
		if r.Platform != nil {
			src.Architecture = r.Platform.Architecture
		}
		b.credentials(o, ns, p+".registry", src)
		return src
	case s.PVC != nil:
		sns := s.PVC.Namespace
		if sns == "" {
			sns = ns
		}
		return &Source{Kind: SourcePVC, CloneOf: sns + "/" + s.PVC.Name}
	case s.Upload != nil:
		return &Source{Kind: SourceUpload}
	case s.Blank != nil:
		return &Source{Kind: SourceBlank}
	}
	kind := map[bool]string{s.S3 != nil: "s3", s.GCS != nil: "gcs", s.Imageio != nil: "imageio", s.VDDK != nil: "vddk", s.Snapshot != nil: "snapshot"}[true]
	b.errorf(o, p+"."+kind, ErrDVSourceNotLocal, "%s", kind)
	return nil
}

func validChecksum(s string) bool {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok {
		return false
	}
	n := map[string]int{"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}[strings.ToLower(alg)]
	if n == 0 || len(hex) != n {
		return false
	}
	for _, r := range hex {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// credentials takes a referenced Secret or ConfigMap from the repository
// when it is there; a plain Secret in git works but is warned about (one
// SOPS encrypted is not).
func (b *builder) credentials(o *manifests.Object, ns, p string, src *Source) {
	if src.SecretRef != "" {
		if so := b.secrets[ns+"/"+src.SecretRef]; so != nil && so.Value != nil {
			sec := so.Value.(*corev1.Secret)
			src.SecretData = map[string][]byte{}
			for k, v := range sec.Data {
				src.SecretData[k] = v
			}
			for k, v := range sec.StringData {
				src.SecretData[k] = []byte(v)
			}
			if !so.Encrypted {
				b.warnf(so, "", ErrSecretInGit, "used by %s", o.Ref)
			}
		}
	}
	if src.CertConfigMap != "" {
		if co := b.configs[ns+"/"+src.CertConfigMap]; co != nil && co.Value != nil {
			src.CAData = co.Value.(*corev1.ConfigMap).Data
		}
	}
	_ = p
}
