package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cheggaaa/pb/v3"
	"github.com/mattn/go-isatty"

	"github.com/nodevirt/nodevirt/reconciler/storage"
)

// importProgress shows the imports apply waits for on w (stderr): a bar per
// import on a terminal, else a line per import at every tenth done or every
// lineEvery, and always at the end.
type importProgress struct {
	w         io.Writer
	tty       bool
	lineEvery time.Duration
	pool      *pb.Pool
	bars      map[string]*pb.ProgressBar
	last      map[string]lineState
}

type lineState struct {
	tenth int
	at    time.Time
	ended bool
}

func newImportProgress(w io.Writer) *importProgress {
	f, ok := w.(*os.File)
	tty := ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
	return &importProgress{w: w, tty: tty, lineEvery: 5 * time.Second, bars: map[string]*pb.ProgressBar{}, last: map[string]lineState{}}
}

func (p *importProgress) update(imps []storage.ImportProgress) {
	for _, imp := range imps {
		if p.tty {
			p.bar(imp)
		} else {
			p.line(imp)
		}
	}
}

func (p *importProgress) bar(imp storage.ImportProgress) {
	b := p.bars[imp.Claim]
	if b == nil {
		b = pb.New(1000).SetTemplateString(`{{string . "name"}} {{bar . }} {{percent . }} {{string . "state"}}`).
			Set("name", "import "+imp.Claim)
		p.bars[imp.Claim] = b
		if p.pool == nil {
			p.pool = pb.NewPool(b)
			p.pool.Output = p.w
			if err := p.pool.Start(); err != nil {
				// Not a terminal after all: fall back to lines.
				p.pool, p.tty = nil, false
				p.line(imp)
				return
			}
		} else {
			p.pool.Add(b)
		}
	}
	b.SetCurrent(int64(imp.Progress * 10))
	if !imp.Running {
		b.Set("state", imp.Phase)
	}
}

func (p *importProgress) line(imp storage.ImportProgress) {
	st := p.last[imp.Claim]
	if st.ended {
		return
	}
	tenth := int(imp.Progress / 10)
	now := time.Now()
	if imp.Running && !st.at.IsZero() && tenth <= st.tenth && now.Sub(st.at) < p.lineEvery {
		return
	}
	size := ""
	if imp.Size > 0 {
		size = " of a " + bytesText(imp.Size) + " disk"
	}
	switch {
	case imp.Running:
		fmt.Fprintf(p.w, "import %s: %.0f%%%s\n", imp.Claim, imp.Progress, size)
	case imp.Phase == storage.PhaseSucceeded:
		fmt.Fprintf(p.w, "import %s: 100%%%s: done\n", imp.Claim, size)
	default:
		fmt.Fprintf(p.w, "import %s: %s: %s\n", imp.Claim, imp.Phase, imp.Message)
	}
	p.last[imp.Claim] = lineState{tenth: tenth, at: now, ended: !imp.Running}
}

// stop ends the bars.
func (p *importProgress) stop() {
	if p.pool != nil {
		_ = p.pool.Stop()
		p.pool = nil
	}
}
