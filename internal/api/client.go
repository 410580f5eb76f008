package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	uploadv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/upload/v1beta1"

	"github.com/nodevirt/nodevirt/internal/status"
)

// ErrNoAgent: no agent answers on the socket; the CLI then reads the state
// directly.
var ErrNoAgent = errors.New("no running agent")

// Client talks to a running agent, over its unix socket or over HTTPS.
type Client struct {
	base  string
	http  *http.Client
	token string
	// local: the client reaches its agent through the unix socket only.
	local bool
}

// Local connects to the agent's socket. It returns ErrNoAgent (wrapped)
// when nothing answers there.
func Local(ctx context.Context, socket string) (*Client, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %v", ErrNoAgent, socket, err)
	}
	c.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{base: "http://nodevirt", http: &http.Client{Transport: tr}, local: true}, nil
}

// Credentials say how a remote client proves who it is and whom it trusts:
// a token file or a client certificate and key, and the agent's CA bundle
// (the system roots when empty).
type Credentials struct {
	TokenFile         string
	CertFile, KeyFile string
	CAFile            string
	// Insecure skips the verification of the agent's certificate.
	Insecure bool
}

// Remote connects to an agent's HTTPS address (https://host:9443).
func Remote(server string, cr Credentials) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want https://HOST:PORT", server)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cr.Insecure}
	var tok []byte
	switch {
	case cr.CertFile != "" || cr.KeyFile != "":
		pair, err := tls.LoadX509KeyPair(cr.CertFile, cr.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--client-certificate and --client-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case cr.TokenFile != "":
		if tok, err = os.ReadFile(cr.TokenFile); err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
	default:
		return nil, errors.New("--server needs --token-file (nodevirt token create on the host) or --client-certificate and --client-key (nodevirt certs issue-client)")
	}
	caFile := cr.CAFile
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--certificate-authority: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--certificate-authority %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), token: strings.TrimSpace(string(tok)),
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Minute}}, nil
}

// APIError is an error answer of the agent.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Get decodes the JSON at path into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// Raw returns the JSON document at path as the agent sent it.
func (c *Client) Raw(ctx context.Context, path string) ([]byte, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, path, nil, &raw)
	return raw, err
}

// Status is the node's status.
func (c *Client) Status(ctx context.Context) (status.Node, error) {
	var st status.Node
	return st, c.Get(ctx, Prefix+"/status", &st)
}

// VMAction runs start, stop, restart, pause or unpause on a VM.
func (c *Client) VMAction(ctx context.Context, action, namespace, name string) (status.ActionResult, error) {
	var res status.ActionResult
	p := fmt.Sprintf("%s/namespaces/%s/virtualmachines/%s/%s", Prefix, url.PathEscape(namespace), url.PathEscape(name), url.PathEscape(action))
	return res, c.do(ctx, http.MethodPut, p, nil, &res)
}

// Reconcile asks the agent to fetch and apply now.
func (c *Client) Reconcile(ctx context.Context) (status.ActionResult, error) {
	var res status.ActionResult
	return res, c.do(ctx, http.MethodPost, Prefix+"/reconcile", nil, &res)
}

// Suspend suspends (on) or resumes object, or the node when object is "".
func (c *Client) Suspend(ctx context.Context, object string, on bool) (status.ActionResult, error) {
	var res status.ActionResult
	p := Prefix + "/resume"
	if on {
		p = Prefix + "/suspend"
	}
	return res, c.do(ctx, http.MethodPost, p, SuspendRequest{Object: object}, &res)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if b, ok := body.([]byte); ok {
		rd = bytes.NewReader(b)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// A command shows the state as it is now, never a poller's cached one.
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("ask the agent: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read the agent's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		return answerError(resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode the agent's answer to %s: %w", path, err)
	}
	return nil
}

// answerError is the error of an answer of code 300 or more: the agent's
// JSON error, or a plain text one (a proxy's), or the status alone.
func answerError(resp *http.Response, body []byte) error {
	var e Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &APIError{Code: resp.StatusCode, Message: e.Error}
	}
	if msg := strings.TrimSpace(string(body)); msg != "" && len(msg) < 1024 && !strings.HasPrefix(msg, "<") {
		return &APIError{Code: resp.StatusCode, Message: msg}
	}
	return &APIError{Code: resp.StatusCode, Message: fmt.Sprintf("the agent answered %s", resp.Status)}
}

// UploadToken asks for a token to upload into the DataVolume
// namespace/name: CDI's UploadTokenRequest, answered with status.token.
func (c *Client) UploadToken(ctx context.Context, namespace, name string) (string, error) {
	body, err := uploadTokenRequest(namespace, name)
	if err != nil {
		return "", err
	}
	var res uploadv1beta1.UploadTokenRequest
	if err := c.do(ctx, http.MethodPost, uploadTokenPathFor(url.PathEscape(namespace)), body, &res); err != nil {
		return "", err
	}
	if res.Status.Token == "" {
		return "", fmt.Errorf("the agent answered the upload token request for %s/%s without a token", namespace, name)
	}
	return res.Status.Token, nil
}

// Upload sends an image of size bytes (-1 when unknown) read from r with
// an upload token, to the upload path at uploadURL (https://HOST:PORT;
// "" is the agent c talks to, and a client of the socket reaches no
// other). With async the agent answers once it has every byte and
// converts on; else once the disk is written. It has no timeout of its
// own: an image takes as long as it takes; ctx ends it.
func (c *Client) Upload(ctx context.Context, uploadURL, token string, r io.Reader, size int64, async bool) error {
	base := c.base
	if uploadURL != "" {
		if c.local {
			return fmt.Errorf("upload to %s: a client of the agent's socket uploads to that agent only", uploadURL)
		}
		u, err := url.Parse(uploadURL)
		if err != nil || u.Host == "" {
			return fmt.Errorf("--uploadproxy-url %q: want https://HOST:PORT", uploadURL)
		}
		if u.Scheme == "" {
			u.Scheme = "https"
		}
		base = strings.TrimRight(u.String(), "/")
	}
	path := UploadPath
	if async {
		path = UploadAsyncPath
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, r)
	if err != nil {
		return err
	}
	// With the size known, the body goes out with its Content-Length
	// (not chunked), as virtctl sends it.
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	hc := &http.Client{Transport: c.http.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		return answerError(resp, b)
	}
	return nil
}
