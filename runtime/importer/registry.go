package importer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The registry client speaks the OCI distribution API directly (pull only:
// anonymous, basic and bearer-token auth) and uses go-containerregistry for
// references and manifests. Its remote package would do the transport too,
// but it needs modules nodevirt's go.mod does not pin yet.

var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex), string(types.DockerManifestList),
	string(types.OCIManifestSchema1), string(types.DockerManifestSchema2),
}, ", ")

// registryClient pulls from one registry.
type registryClient struct {
	base     string // scheme://host
	repo     string
	client   *http.Client
	user     string
	password string
	auth     string // Authorization header once a challenge was answered
}

func (j *job) registry(ctx context.Context) error {
	src := j.req.Source
	ref, err := parseImageURL(src.URL, src.Insecure)
	if err != nil {
		return err
	}
	stage, err := j.stagePath(true, "registry")
	if err != nil {
		return err
	}
	rc, err := newRegistryClient(ctx, ref, src)
	if err != nil {
		return err
	}
	j.prog.phase(0, 50)
	n, err := rc.pullDisk(ctx, ref.Identifier(), src.Architecture, stage, j.prog)
	j.res.Transferred = n
	if err != nil {
		return fmt.Errorf("%s: %w", src.URL, err)
	}
	return j.fromLocal(ctx, stage)
}

// parseImageURL takes CDI's registry URL: docker://host/repo:tag or @digest.
func parseImageURL(u string, insecure bool) (name.Reference, error) {
	rest, ok := strings.CutPrefix(u, "docker://")
	if !ok {
		if strings.HasPrefix(u, "oci-archive://") {
			return nil, fmt.Errorf("registry url %q: oci-archive sources are %w", u, ErrUnsupported)
		}
		return nil, fmt.Errorf("registry url %q: want docker://registry/repository:tag", u)
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(rest, opts...)
	if err != nil {
		return nil, fmt.Errorf("registry url %q: %w", u, err)
	}
	return ref, nil
}

// newRegistryClient finds the registry's scheme: https, or for an insecure
// registry https without verification falling back to plain http.
func newRegistryClient(ctx context.Context, ref name.Reference, src Source) (*registryClient, error) {
	host := ref.Context().RegistryStr()
	schemes := []string{"https"}
	if src.Insecure {
		schemes = append(schemes, "http")
	}
	var lastErr error
	for _, scheme := range schemes {
		tr, err := transport(src.CA, src.Insecure)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.URL, err)
		}
		rc := &registryClient{
			base: scheme + "://" + host, repo: ref.Context().RepositoryStr(),
			client: &http.Client{Transport: tr}, user: src.Username, password: src.Password,
		}
		// /v2/ answers 200 or 401; either proves the scheme works.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rc.base+"/v2/", nil)
		resp, err := rc.client.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		resp.Body.Close()
		return rc, nil
	}
	hint := ""
	if !src.Insecure {
		hint = " (a registry without TLS must be listed in HyperConverged spec.storageImport.insecureRegistries)"
	}
	return nil, fmt.Errorf("%s: %w: %w%s", src.URL, ErrUnreachable, lastErr, hint)
}

// get fetches a registry path, answering a 401 challenge once.
func (rc *registryClient) get(ctx context.Context, p, accept string) (*http.Response, error) {
	u := rc.base + p
	do := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if rc.auth != "" {
			req.Header.Set("Authorization", rc.auth)
		}
		resp, err := rc.client.Do(req)
		if err != nil {
			return nil, httpError(u, err)
		}
		return resp, nil
	}
	resp, err := do()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized && rc.auth == "" {
		challenge := resp.Header.Get("WWW-Authenticate")
		resp.Body.Close()
		if err := rc.authenticate(ctx, challenge); err != nil {
			return nil, err
		}
		if resp, err = do(); err != nil {
			return nil, err
		}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusError(u, resp, rc.user != "")
	}
	return resp, nil
}

// authenticate answers a WWW-Authenticate challenge: Basic with the
// secret's credentials, or Bearer with a token from the realm.
func (rc *registryClient) authenticate(ctx context.Context, challenge string) error {
	scheme, params, _ := strings.Cut(challenge, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		if rc.user == "" {
			return fmt.Errorf("registry %s wants credentials: %w (set secretRef)", rc.base, ErrUnauthorized)
		}
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(rc.user, rc.password)
		rc.auth = req.Header.Get("Authorization")
		return nil
	case "bearer":
	default:
		return fmt.Errorf("registry %s: unknown auth challenge %q: %w", rc.base, challenge, ErrUnauthorized)
	}
	p := map[string]string{}
	for _, kv := range strings.Split(params, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok {
			p[k] = strings.Trim(v, `"`)
		}
	}
	realm, err := url.Parse(p["realm"])
	if err != nil || realm.Scheme == "" {
		return fmt.Errorf("registry %s: bearer challenge without a usable realm: %q", rc.base, challenge)
	}
	q := realm.Query()
	if s := p["service"]; s != "" {
		q.Set("service", s)
	}
	scope := p["scope"]
	if scope == "" {
		scope = "repository:" + rc.repo + ":pull"
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return err
	}
	if rc.user != "" {
		req.SetBasicAuth(rc.user, rc.password)
	}
	resp, err := rc.client.Do(req)
	if err != nil {
		return httpError(realm.String(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(realm.String(), resp, rc.user != "")
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		return fmt.Errorf("registry token from %s: %w", realm.Host, err)
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken
	}
	rc.auth = "Bearer " + tok.Token
	return nil
}

// manifest resolves ref (a tag or digest) to an image manifest for
// linux/arch, following an index.
func (rc *registryClient) manifest(ctx context.Context, ref, arch string) (*v1.Manifest, error) {
	for range 2 {
		resp, err := rc.get(ctx, "/v2/"+rc.repo+"/manifests/"+ref, manifestAccept)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		mt := types.MediaType(strings.TrimSpace(strings.Split(resp.Header.Get("Content-Type"), ";")[0]))
		if mt == "" || mt == "application/json" || mt == "text/plain" {
			var probe struct {
				MediaType types.MediaType `json:"mediaType"`
			}
			_ = json.Unmarshal(body, &probe)
			mt = probe.MediaType
		}
		if mt.IsIndex() {
			idx, err := v1.ParseIndexManifest(bytes.NewReader(body))
			if err != nil {
				return nil, fmt.Errorf("parse image index: %w", err)
			}
			if arch == "" {
				arch = runtime.GOARCH
			}
			ref = ""
			for _, d := range idx.Manifests {
				if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == arch {
					ref = d.Digest.String()
					break
				}
			}
			if ref == "" {
				return nil, fmt.Errorf("the image index has no linux/%s image", arch)
			}
			continue
		}
		m, err := v1.ParseManifest(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("parse image manifest: %w", err)
		}
		return m, nil
	}
	return nil, errors.New("image index points to another index")
}

// pullDisk writes the single regular file under /disk/ of the image's
// flattened filesystem (whiteouts applied) to dst, the containerDisk layout
// the seed's Dockerfile builds. It returns the bytes transferred.
func (rc *registryClient) pullDisk(ctx context.Context, ref, arch, dst string, prog *progress) (int64, error) {
	m, err := rc.manifest(ctx, ref, arch)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return 0, fmt.Errorf("scratch space: %w", err)
	}
	defer out.Close()
	files := map[string]bool{} // names under disk/ in the flattened image
	current := ""              // the one whose content is in dst
	var n int64
	for _, l := range m.Layers {
		resp, err := rc.get(ctx, "/v2/"+rc.repo+"/blobs/"+l.Digest.String(), "")
		if err != nil {
			return n, err
		}
		h := sha256.New()
		c := &counter{r: io.TeeReader(resp.Body, h), prog: prog, total: total, ctx: ctx, n: n}
		err = applyLayer(c, files, &current, out)
		if err == nil {
			_, err = io.Copy(io.Discard, c)
		}
		resp.Body.Close()
		n = c.n
		if err != nil {
			return n, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if l.Digest.Algorithm == "sha256" && hex.EncodeToString(h.Sum(nil)) != l.Digest.Hex {
			return n, fmt.Errorf("layer %s: %w", l.Digest, ErrChecksum)
		}
	}
	var names []string
	for f := range files {
		names = append(names, "/"+f)
	}
	switch {
	case len(names) == 0:
		return n, fmt.Errorf("the image has no regular file under /disk/; a containerDisk puts its disk there (ADD disk.qcow2 /disk/): %w", ErrFormat)
	case len(names) > 1:
		return n, fmt.Errorf("the image has several files under /disk/ (%s); a containerDisk has exactly one: %w", strings.Join(names, ", "), ErrFormat)
	case names[0] != "/"+current:
		return n, fmt.Errorf("the image's /disk/ file %s was written by an earlier layer than a file a later layer removed again: %w", names[0], ErrFormat)
	}
	return n, out.Close()
}

// applyLayer reads one layer (a tar, maybe gzip compressed) and updates
// files under disk/; the content of the file kept so far is in out.
func applyLayer(r io.Reader, files map[string]bool, current *string, out *os.File) error {
	br := bufio.NewReader(r)
	head, _ := br.Peek(4)
	var tr *tar.Reader
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		tr = tar.NewReader(zr)
	case bytes.HasPrefix(head, zstdMagic):
		return fmt.Errorf("zstd compressed layers are %w", ErrUnsupported)
	default:
		tr = tar.NewReader(br)
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		p := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		dir, base := path.Split(p)
		if dir != "disk/" {
			continue
		}
		if base == ".wh..wh..opq" {
			clear(files)
			continue
		}
		if gone, ok := strings.CutPrefix(base, ".wh."); ok {
			delete(files, "disk/"+gone)
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		files[p] = true
		*current = p
		if err := out.Truncate(0); err != nil {
			return err
		}
		if _, err := copySparse(out, tr, 1<<62, true); err != nil {
			return fmt.Errorf("extract /%s: %w", p, err)
		}
	}
}
