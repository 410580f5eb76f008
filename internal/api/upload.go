package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	uploadv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/upload/v1beta1"
)

// Uploads is the agent's side of CDI's upload protocol.
type Uploads interface {
	// UploadReady reports whether the DataVolume namespace/name takes an
	// upload now (nil: its phase is UploadReady).
	UploadReady(ctx context.Context, namespace, name string) error
	// Upload reads an image of size bytes (-1 when unknown) from r into
	// the DataVolume. With async it returns once every byte was received
	// and the data checked, and the conversion goes on; else it returns
	// once the disk is complete or the upload failed.
	Upload(ctx context.Context, namespace, name string, r io.Reader, size int64, async bool) error
}

// CDI's paths, so scripts and clients written for CDI's upload proxy
// work against the agent unchanged.
const (
	// UploadTokenPath is where an UploadTokenRequest is created (POST);
	// its answer carries the token in status.token.
	UploadTokenPath = "/apis/upload.cdi.kubevirt.io/v1beta1/namespaces/{namespace}/uploadtokenrequests"
	// UploadPath takes the image as the request body and answers once
	// the disk is written; UploadPathAlpha is its older name.
	UploadPath      = "/v1beta1/upload"
	UploadPathAlpha = "/v1alpha1/upload"
	// UploadAsyncPath answers once the data is received and checked; a
	// HEAD with the token answers 200 so clients know it exists.
	UploadAsyncPath = "/v1beta1/upload-async"
	// UploadFormPath and UploadFormAsyncPath take a multipart form whose
	// part named "file" is the image (a browser's upload).
	UploadFormPath      = "/v1beta1/upload-form"
	UploadFormAsyncPath = "/v1beta1/upload-form-async"
)

// uploadTokenPathFor is UploadTokenPath for one namespace.
func uploadTokenPathFor(namespace string) string {
	return strings.Replace(UploadTokenPath, "{namespace}", namespace, 1)
}

// UploadTokenLifetime is how long an upload token may start an upload:
// CDI's five minutes. An upload that started goes on past it.
const UploadTokenLifetime = 5 * time.Minute

// uploadTokenLeeway is the clock skew a token's times may have (CDI's).
const uploadTokenLeeway = 10 * time.Second

// uploadIssuer names the agent's token issuer: the tokens are CDI's shape
// but no CDI accepts them, nor they CDI's.
const uploadIssuer = "nodevirt-apiserver"

// bearerRE is CDI's upload proxy's: a token of the JWT alphabet.
var bearerRE = regexp.MustCompile(`(?i)^Bearer\s+([A-Za-z0-9\-\._~\+\/]+)$`)

// uploadClaims are CDI's token payload, beside the registered claims.
type uploadClaims struct {
	Operation string                      `json:"operation,omitempty"`
	Name      string                      `json:"name,omitempty"`
	Namespace string                      `json:"namespace,omitempty"`
	Resource  metav1.GroupVersionResource `json:"resource,omitempty"`
}

const uploadOperation = "Upload"

var pvcResource = metav1.GroupVersionResource{Group: "", Version: "v1", Resource: "persistentvolumeclaims"}

// uploadSigner holds the key the tokens are signed with. It is made on
// the first use and lives in memory only: a restarted agent refuses the
// tokens of the last one, and a client asks again (they last minutes).
type uploadSigner struct {
	once   sync.Once
	key    *rsa.PrivateKey
	signer jose.Signer
	err    error
}

func (u *uploadSigner) init() error {
	u.once.Do(func() {
		if u.key, u.err = rsa.GenerateKey(rand.Reader, 2048); u.err != nil {
			u.err = fmt.Errorf("make the upload token key: %w", u.err)
			return
		}
		u.signer, u.err = jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: u.key},
			(&jose.SignerOptions{}).WithType("JWT"))
	})
	return u.err
}

func (u *uploadSigner) issue(now time.Time, namespace, name string) (string, error) {
	if err := u.init(); err != nil {
		return "", err
	}
	std := jwt.Claims{Issuer: uploadIssuer, IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(UploadTokenLifetime))}
	return jwt.Signed(u.signer).Claims(std).
		Claims(uploadClaims{Operation: uploadOperation, Name: name, Namespace: namespace, Resource: pvcResource}).
		Serialize()
}

var (
	errTokenInvalid = errors.New("the upload token is not valid (expired, or issued before the agent restarted): ask for a new one")
	errTokenPayload = errors.New("the upload token is not for an upload into a PersistentVolumeClaim")
)

// verify checks a token's signature and times and returns its payload;
// errTokenInvalid for a token this agent did not sign or that expired,
// errTokenPayload for one that names no upload.
func (u *uploadSigner) verify(now time.Time, token string) (uploadClaims, error) {
	var c uploadClaims
	if err := u.init(); err != nil {
		return c, err
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.PS256})
	if err != nil {
		return c, errTokenInvalid
	}
	var std jwt.Claims
	if err := tok.Claims(&u.key.PublicKey, &std, &c); err != nil {
		return c, errTokenInvalid
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: uploadIssuer, Time: now}, uploadTokenLeeway); err != nil {
		return c, errTokenInvalid
	}
	if c.Operation != uploadOperation || c.Resource != pvcResource || c.Name == "" || c.Namespace == "" {
		return c, errTokenPayload
	}
	return c, nil
}

// uploadRoutes mounts the token request and the upload paths.
func (s *Server) uploadRoutes() {
	m := s.mux
	m.Handle(UploadTokenPath, only(s.uploadToken, http.MethodPost))
	m.Handle(UploadPath, s.upload(false, false))
	m.Handle(UploadPathAlpha, s.upload(false, false))
	m.Handle(UploadAsyncPath, s.upload(true, false))
	m.Handle(UploadFormPath, s.upload(false, true))
	m.Handle(UploadFormAsyncPath, s.upload(true, true))
}

// isUploadPath: the paths an upload token authenticates, served beside
// the API's own limits (body size, in-flight bound, rate), since one
// upload may stream for hours.
func isUploadPath(path string) bool {
	switch path {
	case UploadPath, UploadPathAlpha, UploadAsyncPath, UploadFormPath, UploadFormAsyncPath:
		return true
	}
	return false
}

// noUploads answers the upload routes of an agent without Options.Uploads.
const noUploads = "this agent takes no uploads"

// uploadToken answers an UploadTokenRequest for a DataVolume with its
// token, as CDI's API server does; the caller was authenticated as for
// any API route.
func (s *Server) uploadToken(w http.ResponseWriter, r *http.Request) {
	if s.o.Uploads == nil {
		writeError(w, http.StatusNotImplemented, noUploads)
		return
	}
	req, err := readBody[uploadv1beta1.UploadTokenRequest](w, r)
	if err != nil {
		return
	}
	ns := r.PathValue("namespace")
	if req.Namespace != "" && req.Namespace != ns {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("metadata.namespace %q is not the namespace of the path, %q", req.Namespace, ns))
		return
	}
	name := req.Spec.PvcName
	if name == "" {
		writeError(w, http.StatusBadRequest, "spec.pvcName is required: the DataVolume to upload into")
		return
	}
	// Only a DataVolume the agent holds as an upload target gets a token;
	// one that is not ready yet, or done, gets it and hears why on upload,
	// as with CDI.
	if err := s.o.Uploads.UploadReady(r.Context(), ns, name); err != nil && (errors.Is(err, ErrNotFound) || !isMarked(err)) {
		writeError(w, codeOf(err), err.Error())
		return
	}
	tok, err := s.uploadKey.issue(s.now(), ns, name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	req.APIVersion, req.Kind = uploadv1beta1.SchemeGroupVersion.String(), "UploadTokenRequest"
	req.Namespace = ns
	if req.Name == "" {
		req.Name = req.GenerateName + randomSuffix()
	}
	req.CreationTimestamp = metav1.NewTime(s.now())
	req.Status.Token = tok
	s.o.Log.Info("upload token issued", "namespace", ns, "dataVolume", name)
	writeJSON(w, http.StatusCreated, req)
}

// isMarked: err carries one of the API's kinds.
func isMarked(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnavailable)
}

func randomSuffix() string {
	const letters = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// upload serves one of CDI's upload paths: the token in the Authorization
// header names the DataVolume, the body (or the form's part "file") is
// the image, streamed to the agent as it arrives.
func (s *Server) upload(async, form bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodHead {
			w.Header().Set("Allow", "POST, HEAD")
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s: POST the image", r.Method, r.URL.Path))
			return
		}
		if s.o.Uploads == nil {
			writeError(w, http.StatusNotImplemented, noUploads)
			return
		}
		h := r.Header.Get("Authorization")
		if h == "" {
			writeError(w, http.StatusBadRequest, "missing the Authorization header: send Authorization: Bearer <upload token> (an UploadTokenRequest's status.token)")
			return
		}
		m := bearerRE.FindStringSubmatch(h)
		if m == nil {
			writeError(w, http.StatusBadRequest, "the Authorization header is not Bearer <upload token>")
			return
		}
		claims, err := s.uploadKey.verify(s.now(), m[1])
		switch {
		case errors.Is(err, errTokenInvalid):
			s.o.Log.Warn("upload refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", err.Error())
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		case errors.Is(err, errTokenPayload):
			writeError(w, http.StatusBadRequest, err.Error())
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if r.Method == http.MethodHead {
			// The client asks whether this path exists before it sends.
			w.WriteHeader(http.StatusOK)
			return
		}
		// The server's read timeout is for small requests; an image may
		// take hours to arrive, and the answer waits for its conversion.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})

		body, size := io.Reader(r.Body), r.ContentLength
		if form {
			if body, err = formFile(r); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			size = -1
		}
		counted := &countingReader{r: body}
		start := s.now()
		log := s.o.Log.With("namespace", claims.Namespace, "dataVolume", claims.Name, "path", r.URL.Path)
		log.Info("upload started", "size", size, "remote", r.RemoteAddr)
		err = s.o.Uploads.Upload(r.Context(), claims.Namespace, claims.Name, counted, size, async)
		if s.o.Uploaded != nil {
			s.o.Uploaded(counted.n)
		}
		if err != nil {
			log.Warn("upload failed", "received", counted.n, "err", err)
			// The agent's error names the DataVolume.
			writeError(w, codeOf(err), err.Error())
			return
		}
		log.Info("upload received", "bytes", counted.n, "took", s.now().Sub(start).Round(time.Millisecond), "async", async)
		w.WriteHeader(http.StatusOK)
	}
}

// formFile is the multipart form's part named "file", read as it
// arrives; the parts before it are skipped.
func formFile(r *http.Request) (io.Reader, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" {
		return nil, fmt.Errorf("the form upload wants Content-Type multipart/form-data, not %q", r.Header.Get("Content-Type"))
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("read the form: %w", err)
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, errors.New(`the form has no part named "file"`)
		}
		if err != nil {
			return nil, fmt.Errorf("read the form: %w", err)
		}
		if p.FormName() == "file" {
			return p, nil
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// uploadTokenRequest is the body the clients send: CDI's object, named by
// its generateName as virtctl names it.
func uploadTokenRequest(namespace, name string) ([]byte, error) {
	return json.Marshal(uploadv1beta1.UploadTokenRequest{
		TypeMeta:   metav1.TypeMeta{APIVersion: uploadv1beta1.SchemeGroupVersion.String(), Kind: "UploadTokenRequest"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "token-for-nodevirt-", Namespace: namespace},
		Spec:       uploadv1beta1.UploadTokenRequestSpec{PvcName: name},
	})
}
