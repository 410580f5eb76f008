// Package webtest drives a headless Chromium for tests of nodevirt's web
// page: open a URL (with the agent's session cookie, over HTTPS with the
// agent's self-signed certificate), read the rendered DOM and save a
// screenshot. Without chromium installed a test ends through testenv.Missing:
// a failure in CI, a skip that names `make setup` elsewhere.
package webtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/nodevirt/nodevirt/internal/testenv"
)

// ScreenshotDirEnv names the directory screenshots are kept in; unset,
// they go to the test's temporary directory and vanish with it.
const ScreenshotDirEnv = "NODEVIRT_SCREENSHOT_DIR"

// ActionTimeout bounds each step of a Browser, so a page that never shows
// what a test waits for fails the test instead of hanging it.
const ActionTimeout = 30 * time.Second

// Browser is one tab of a headless Chromium that lives as long as its test.
type Browser struct {
	t   testing.TB
	ctx context.Context
}

// Start starts chromium (found on PATH) for t and stops it when t ends. The
// browser accepts any certificate, because the agent serves HTTPS with a CA
// it made itself and Chromium reads no CA from a flag; point it only at
// loopback test servers.
func Start(t testing.TB) *Browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Missing(t, "chromium for the browser tests (run `make setup`, which installs Debian's chromium): "+err.Error())
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// Tests run as root in containers, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser; it must not carry a timeout, which
	// would stop the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return &Browser{t: t, ctx: ctx}
}

// Context is the tab's chromedp context, for actions beyond these.
func (b *Browser) Context() context.Context { return b.ctx }

func (b *Browser) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, ActionTimeout)
}

// Open sets the cookies for url and loads it, waiting until its body is
// there.
func (b *Browser) Open(url string, cookies ...*http.Cookie) error {
	ctx, cancel := b.step()
	defer cancel()
	for _, c := range cookies {
		p := network.SetCookieParams{Name: c.Name, Value: c.Value, URL: url, Path: c.Path,
			HTTPOnly: &c.HttpOnly, Secure: &c.Secure}
		if _, err := chromedp.Call(ctx, network.SetCookie, p); err != nil {
			return fmt.Errorf("set cookie %s for %s: %w", c.Name, url, err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		return fmt.Errorf("open %s: %w", url, err)
	}
	return nil
}

// Text is the rendered text of the first element the CSS selector matches,
// waiting until one is visible.
func (b *Browser) Text(css string) (string, error) {
	ctx, cancel := b.step()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		return "", fmt.Errorf("text of %s: %w", css, err)
	}
	return s, nil
}

// Texts is the rendered text of every element the CSS selector matches, in
// document order; none is an empty list, not an error.
func (b *Browser) Texts(css string) ([]string, error) {
	ctx, cancel := b.step()
	defer cancel()
	sel, err := json.Marshal(css)
	if err != nil {
		return nil, err
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		fmt.Sprintf("Array.from(document.querySelectorAll(%s), e => e.innerText)", sel)))
	if err != nil {
		return nil, fmt.Errorf("texts of %s: %w", css, err)
	}
	return out, nil
}

// WaitText waits until the first element the CSS selector matches reads
// want, across reloads of the page, and says what it read last when it
// does not within timeout.
func (b *Browser) WaitText(css, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
		cancel()
		if err == nil && s == want {
			return nil
		}
		last, lastErr = s, err
		if time.Now().After(deadline) {
			if lastErr != nil {
				return fmt.Errorf("%s does not read %q after %s: %w", css, want, timeout, lastErr)
			}
			return fmt.Errorf("%s reads %q, not %q, after %s", css, last, want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Screenshot saves a PNG of the whole page as name (".png" added) in
// $NODEVIRT_SCREENSHOT_DIR, or in the test's temporary directory, and
// returns its path.
func (b *Browser) Screenshot(name string) (string, error) {
	dir := os.Getenv(ScreenshotDirEnv)
	if dir == "" {
		dir = b.t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("screenshot directory %s: %w", dir, err)
	}
	ctx, cancel := b.step()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", fmt.Errorf("screenshot: %w", err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", fmt.Errorf("save screenshot: %w", err)
	}
	return path, nil
}
