package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// xzPath is the xz program to use, or "" for the Go decoder.
func (im *Importer) xzPath() string {
	switch im.cfg.XZ {
	case "-":
		return ""
	case "":
		p, err := exec.LookPath("xz")
		if err != nil {
			return ""
		}
		return p
	}
	return im.cfg.XZ
}

// xzProgram decompresses r with `xz -dc -T0` under lim.
func (im *Importer) xzProgram(ctx context.Context, bin string, r io.Reader, lim Limits, res *Result) (io.Reader, error) {
	cmd := exec.CommandContext(ctx, bin, "-dc", "-T0")
	cmd.Stdin = r
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cg, note := im.limit(lim)
	if cg != nil {
		cg.apply(cmd)
	}
	if note != "" && res.Limits == "" {
		res.Limits = note
	}
	if err := cmd.Start(); err != nil {
		if cg != nil {
			cg.remove()
		}
		return nil, fmt.Errorf("start xz: %w", err)
	}
	return &programReader{out: out, cmd: cmd, stderr: stderr, cg: cg}, nil
}

// programReader reads a decompressor's output; at its end it reports how
// the program exited, so a corrupt stream is an error, not a short image.
type programReader struct {
	out    io.Reader
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	cg     *cgroup
	done   bool
	err    error
}

func (p *programReader) Read(b []byte) (int, error) {
	if p.done {
		return 0, p.err
	}
	n, err := p.out.Read(b)
	if errors.Is(err, io.EOF) {
		p.done = true
		if werr := p.cmd.Wait(); werr != nil {
			p.err = fmt.Errorf("xz data is corrupt or truncated: %w: %s", ErrFormat, strings.TrimSpace(p.stderr.String()))
		} else {
			p.err = io.EOF
		}
		if p.cg != nil {
			p.cg.remove()
		}
		return n, p.err
	}
	return n, err
}

// close stops the program if its output was not read to the end (an image
// too large for its target) and reaps it.
func (p *programReader) close() {
	if p.done {
		return
	}
	p.done, p.err = true, io.ErrClosedPipe
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	if p.cg != nil {
		p.cg.remove()
	}
}
