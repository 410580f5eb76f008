package importer

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// transport builds an HTTP transport trusting the system's CAs plus ca;
// insecure skips certificate verification (insecure registries only).
func transport(ca []byte, insecure bool) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 30 * time.Second
	tr.ResponseHeaderTimeout = 2 * time.Minute
	tr.DisableCompression = true // a .gz must arrive as it is stored, for the checksum
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(ca) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("the CA bundle holds no PEM certificate: %w", ErrUnreachable)
		}
		cfg.RootCAs = pool
	}
	if insecure {
		cfg.InsecureSkipVerify = true
	}
	tr.TLSClientConfig = cfg
	return tr, nil
}

// checksum parses "algorithm:hex".
func checksum(spec string) (hash.Hash, []byte, error) {
	if spec == "" {
		return nil, nil, nil
	}
	alg, want, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, nil, fmt.Errorf("checksum %q: want algorithm:hex", spec)
	}
	sum, err := hex.DecodeString(want)
	if err != nil {
		return nil, nil, fmt.Errorf("checksum %q: %w", spec, err)
	}
	var h hash.Hash
	switch strings.ToLower(alg) {
	case "md5":
		h = md5.New()
	case "sha1":
		h = sha1.New()
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return nil, nil, fmt.Errorf("checksum algorithm %q: want md5, sha1, sha256 or sha512", alg)
	}
	if len(sum) != h.Size() {
		return nil, nil, fmt.Errorf("checksum %q: %s takes %d hex digits", spec, alg, 2*h.Size())
	}
	return h, sum, nil
}

// httpError turns a transport error into one that says what failed.
func httpError(u string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("GET %s: %w: %w", u, ErrUnreachable, err)
}

// statusError names an unsuccessful response.
func statusError(u string, resp *http.Response, basicAuth bool) error {
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		if basicAuth {
			return fmt.Errorf("GET %s: %s: %w (the server refused the user name and password of the secret)", u, resp.Status, ErrUnauthorized)
		}
		return fmt.Errorf("GET %s: %s: %w (the server wants credentials: set secretRef)", u, resp.Status, ErrUnauthorized)
	case http.StatusNotFound, http.StatusGone:
		return fmt.Errorf("GET %s: %s: %w", u, resp.Status, ErrNotFound)
	}
	return fmt.Errorf("GET %s: unexpected status %s", u, resp.Status)
}

func (j *job) http(ctx context.Context) error {
	src := j.req.Source
	u, err := url.Parse(src.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: want an http:// or https:// URL", src.URL)
	}
	h, want, err := checksum(src.Checksum)
	if err != nil {
		return err
	}
	tr, err := transport(src.CA, false)
	if err != nil {
		return fmt.Errorf("GET %s: %w", src.URL, err)
	}
	client := &http.Client{Transport: tr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return err
	}
	for _, hdr := range src.Headers {
		name, val, ok := strings.Cut(hdr, ":")
		if !ok {
			return fmt.Errorf("extra header %q: want \"Name: value\"", hdr)
		}
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(val))
	}
	if src.Username != "" || src.Password != "" {
		req.SetBasicAuth(src.Username, src.Password)
	}
	if !j.req.Target.Block {
		return j.download(ctx, client, req, h, want)
	}
	resp, err := client.Do(req)
	if err != nil {
		return httpError(src.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(src.URL, resp, src.Username != "")
	}
	j.prog.phase(0, 100)
	var body io.Reader = resp.Body
	if h != nil {
		body = io.TeeReader(body, h)
	}
	c := &counter{r: body, total: resp.ContentLength, prog: j.prog, ctx: ctx}
	verify := func() error {
		j.res.Transferred = c.n
		if resp.ContentLength > 0 && c.n != resp.ContentLength {
			return fmt.Errorf("GET %s: got %d of %d bytes: %w", src.URL, c.n, resp.ContentLength, ErrUnreachable)
		}
		return j.checkSum(h, want)
	}
	return j.stream(ctx, c, "", verify)
}

func (j *job) checkSum(h hash.Hash, want []byte) error {
	if h == nil {
		return nil
	}
	if got := h.Sum(nil); string(got) != string(want) {
		return fmt.Errorf("GET %s: %w: got %s, want %s", j.req.Source.URL, ErrChecksum, hex.EncodeToString(got), j.req.Source.Checksum)
	}
	return nil
}

// upload fills the target from the uploaded stream as CDI's upload server
// does: gz and xz are decompressed in-stream and raw (or ISO) content goes
// straight into the target, zero blocks left as holes; only formats
// qemu-img must convert (qcow2, vmdk, vhdx) are staged in scratch space.
// A stream that ends before Size bytes (a dropped connection) fails.
func (j *job) upload(ctx context.Context) error {
	src := j.req.Source
	if src.Reader == nil {
		return errors.New("upload: no data")
	}
	if src.Size == 0 {
		return fmt.Errorf("upload: the image is empty: %w", ErrFormat)
	}
	j.prog.phase(0, 100)
	c := &counter{r: &exact{r: src.Reader, size: src.Size}, total: src.Size, prog: j.prog, ctx: ctx}
	err := j.stream(ctx, c, "", nil)
	j.res.Transferred = c.n
	return err
}

// exact fails a stream that ends before size bytes (size < 0: unknown).
type exact struct {
	r    io.Reader
	size int64
	n    int64
}

func (e *exact) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	e.n += int64(n)
	if errors.Is(err, io.EOF) && e.size >= 0 && e.n < e.size {
		err = fmt.Errorf("the stream ended after %d of %d bytes (connection dropped?): %w", e.n, e.size, io.ErrUnexpectedEOF)
	}
	return n, err
}

// fromLocal imports a file already on this host (a registry's disk, an
// upload): progress runs from 50 to 100 percent while it is read.
func (j *job) fromLocal(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	j.prog.phase(50, 50)
	return j.stream(ctx, &counter{r: f, total: st.Size(), prog: j.prog, ctx: ctx}, path, nil)
}
