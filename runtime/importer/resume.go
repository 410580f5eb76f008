package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The source's bytes as downloaded are kept beside the target until the
// import succeeds, so an interrupted import (the agent stopped, the network
// dropped) resumes with an HTTP Range request instead of starting over.

// DownloadNames are the files an interrupted HTTP import of target keeps
// to resume from: the bytes received and what identifies their version.
func DownloadNames(target string) (data, meta string) {
	base := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".download")
	return base, base + ".json"
}

// downloadMeta identifies the version of the file being downloaded: a
// resumed request carries it in If-Range, so a changed file comes whole.
type downloadMeta struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
	// Size is the whole file's length, -1 when the server did not say.
	Size int64 `json:"size"`
}

func (m downloadMeta) validator() string {
	// A weak ETag may not be used in If-Range (RFC 9110 13.1.5).
	if m.ETag != "" && !strings.HasPrefix(m.ETag, "W/") {
		return m.ETag
	}
	return m.LastModified
}

// resumeFrom returns how many bytes of a previous download of url can be
// kept, and their version.
func resumeFrom(data, meta, url string) (int64, downloadMeta) {
	b, err := os.ReadFile(meta)
	if err != nil {
		return 0, downloadMeta{}
	}
	var m downloadMeta
	if json.Unmarshal(b, &m) != nil || m.URL != url || m.validator() == "" {
		return 0, downloadMeta{}
	}
	st, err := os.Stat(data)
	if err != nil || !st.Mode().IsRegular() || (m.Size >= 0 && st.Size() > m.Size) {
		return 0, downloadMeta{}
	}
	return st.Size(), m
}

// contentRange parses "bytes first-last/size" or "bytes */size".
func contentRange(v string) (first, size int64, ok bool) {
	spec, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, total, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, false
	}
	size, err := strconv.ParseInt(total, 10, 64)
	if err != nil {
		size = -1
	}
	if rng == "*" {
		return -1, size, true
	}
	f, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	first, err = strconv.ParseInt(f, 10, 64)
	return first, size, err == nil
}

// download fetches the source into the download file, resuming a previous
// one where the server allows, then imports from that file.
func (j *job) download(ctx context.Context, client *http.Client, base *http.Request, h hash.Hash, want []byte) error {
	src := j.req.Source
	data, meta := DownloadNames(j.req.Target.Path)
	have, m := resumeFrom(data, meta, src.URL)
	drop := func() {
		_ = os.Remove(data)
		_ = os.Remove(meta)
	}

	req := base.Clone(ctx)
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		req.Header.Set("If-Range", m.validator())
	}
	resp, err := client.Do(req)
	if err != nil {
		return httpError(src.URL, err)
	}
	defer func() { resp.Body.Close() }()
	complete := false
	switch {
	case have > 0 && resp.StatusCode == http.StatusPartialContent:
		first, _, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || first != have {
			return fmt.Errorf("GET %s: resumed at byte %d, the server sent Content-Range %q: %w", src.URL, have, resp.Header.Get("Content-Range"), ErrUnreachable)
		}
		j.im.log.Info("resuming download", "url", src.URL, "from", have)
	case have > 0 && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The version matched and nothing is left: the earlier run had it all.
		if _, size, ok := contentRange(resp.Header.Get("Content-Range")); ok && size == have {
			complete = true
			break
		}
		// Start over without a range.
		resp.Body.Close()
		drop()
		have = 0
		if resp, err = client.Do(base.Clone(ctx)); err != nil {
			return httpError(src.URL, err)
		}
		if resp.StatusCode != http.StatusOK {
			return statusError(src.URL, resp, src.Username != "")
		}
	case resp.StatusCode == http.StatusOK:
		// No Range support, a changed file, or a first run: from zero.
		have = 0
	default:
		return statusError(src.URL, resp, src.Username != "")
	}

	if !complete {
		if have == 0 {
			m = downloadMeta{URL: src.URL, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Size: resp.ContentLength}
			b, _ := json.Marshal(m)
			if err := os.WriteFile(meta, b, 0o600); err != nil {
				return fmt.Errorf("GET %s: record the download's version: %w", src.URL, err)
			}
		}
		if err := j.fetch(ctx, resp, data, have, m.Size); err != nil {
			if errors.Is(err, errWrite) {
				drop() // a full disk: free what the download took
			}
			return err
		}
	}
	if h != nil {
		if err := hashFile(h, data); err != nil {
			return err
		}
		if err := j.checkSum(h, want); err != nil {
			drop()
			return err
		}
	}
	if err := j.fromLocal(ctx, data); err != nil {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			drop()
		}
		return err
	}
	drop()
	return nil
}

// errWrite marks a failure to write the download file (as opposed to the
// network failing): the bytes kept so far are dropped.
var errWrite = errors.New("write the download")

// fetch appends resp's body to data, which holds have bytes already;
// progress runs from 0 to 50 percent over the whole file.
func (j *job) fetch(ctx context.Context, resp *http.Response, data string, have, size int64) error {
	src := j.req.Source
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if have > 0 {
		flags = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(data, flags, 0o600)
	if err != nil {
		return fmt.Errorf("GET %s: %w: %w", src.URL, errWrite, err)
	}
	defer f.Close()
	j.prog.phase(0, 50)
	c := &counter{r: resp.Body, n: have, total: size, prog: j.prog, ctx: ctx}
	_, err = io.Copy(writerOnly{f}, c)
	j.res.Transferred = c.n - have
	var we writeErr
	switch {
	case errors.As(err, &we):
		return fmt.Errorf("GET %s: %w %s: %w", src.URL, errWrite, data, we.err)
	case err != nil:
		return httpError(src.URL, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("GET %s: %w %s: %w", src.URL, errWrite, data, err)
	}
	if size >= 0 && c.n != size {
		return fmt.Errorf("GET %s: got %d of %d bytes: %w", src.URL, c.n, size, ErrUnreachable)
	}
	return f.Close()
}

type writeErr struct{ err error }

func (e writeErr) Error() string { return e.err.Error() }

// writerOnly tells write failures (disk full) from read failures in io.Copy.
type writerOnly struct{ f *os.File }

func (w writerOnly) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	if err != nil {
		return n, writeErr{err}
	}
	return n, nil
}

func hashFile(h hash.Hash, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	return err
}
