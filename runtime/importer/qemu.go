package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// ErrQemuImgMissing means qemu-img is not installed.
var ErrQemuImgMissing = errors.New("qemu-img is not installed (Debian package qemu-utils; `make test` installs it)")

type imageInfo struct {
	VirtualSize     int64  `json:"virtual-size"`
	Format          string `json:"format"`
	BackingFilename string `json:"backing-filename"`
	FormatSpecific  struct {
		Data struct {
			DataFile string `json:"data-file"`
		} `json:"data"`
	} `json:"format-specific"`
}

// info reads an image's header with qemu-img, naming the format so that
// qemu-img does not probe. Images that refer to other files (a backing file,
// an external data file) are refused: they would read host files into the
// volume.
func (im *Importer) info(ctx context.Context, path, format string) (imageInfo, error) {
	var info imageInfo
	out, err := exec.CommandContext(ctx, im.cfg.QemuImg, "info", "--output=json", "-f", format, path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return info, fmt.Errorf("qemu-img cannot read it as %s: %w: %s", format, ErrFormat, strings.TrimSpace(string(ee.Stderr)))
		}
		if errors.Is(err, exec.ErrNotFound) {
			return info, ErrQemuImgMissing
		}
		return info, fmt.Errorf("qemu-img info: %w", err)
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return info, fmt.Errorf("qemu-img info: %w", err)
	}
	if info.BackingFilename != "" {
		return info, fmt.Errorf("%s image has a backing file (%s): %w", format, info.BackingFilename, ErrFormat)
	}
	if info.FormatSpecific.Data.DataFile != "" {
		return info, fmt.Errorf("%s image has an external data file (%s): %w", format, info.FormatSpecific.Data.DataFile, ErrFormat)
	}
	return info, nil
}

// qemuProgress matches qemu-img convert -p's "(12.34/100%)".
var qemuProgress = regexp.MustCompile(`\((\d+(?:\.\d+)?)/100%\)`)

// qemuConvert converts src (of format) to raw at dst; block says dst is a
// device that exists (-n). It runs under lim where the host allows and
// returns a note saying whether the limits were enforced.
func (im *Importer) qemuConvert(ctx context.Context, src, format, dst string, block bool, lim Limits, prog *progress) (string, error) {
	args := []string{"convert", "-p", "-f", format, "-O", "raw"}
	if block {
		args = append(args, "-n")
	}
	args = append(args, src, dst)
	cmd := exec.CommandContext(ctx, im.cfg.QemuImg, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cg, note := im.limit(lim)
	if cg != nil {
		defer cg.remove()
		cg.apply(cmd)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return note, ErrQemuImgMissing
		}
		if cg != nil {
			// The cgroup could not take the process: say so and run
			// without it rather than fail the import.
			cg.remove()
			note = "limits not enforced: starting qemu-img in cgroup " + cg.dir + " failed: " + err.Error()
			cmd = exec.CommandContext(ctx, im.cfg.QemuImg, args...)
			cmd.Stderr = &stderr
			if stdout, err = cmd.StdoutPipe(); err != nil {
				return note, err
			}
			if err = cmd.Start(); err != nil {
				return note, fmt.Errorf("qemu-img convert: %w", err)
			}
		} else {
			return note, fmt.Errorf("qemu-img convert: %w", err)
		}
	}
	sc := bufio.NewScanner(stdout)
	sc.Split(splitCR)
	for sc.Scan() {
		if m := qemuProgress.FindStringSubmatch(sc.Text()); m != nil {
			if pct, err := strconv.ParseFloat(m[1], 64); err == nil {
				prog.step(pct / 100)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return note, ctx.Err()
		}
		return note, fmt.Errorf("qemu-img convert: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return note, nil
}

// splitCR splits on \r and \n: qemu-img redraws its progress with \r.
func splitCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
