package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/nodevirt/nodevirt/internal/srctree"
	"github.com/nodevirt/nodevirt/manifests/diag"
)

// Options tune decoding.
type Options struct {
	// DefaultNamespace is given to namespaced objects without
	// metadata.namespace; "" means "default".
	DefaultNamespace string
	// StateDir is nodevirt's state directory as a host path under --root
	// ("" when it lies outside the root): the hostpath provisioner may not
	// put volumes in it.
	StateDir string
	// Root is the source tree the directory belongs to (the repository root
	// when the manifests live in a sub-directory): symlinks are followed only
	// when they stay inside it (see internal/srctree). "" means the
	// directory itself.
	Root string
	// Exclude, when set, says which entries of the directory are not part
	// of the manifest tree (rel is slash-separated, relative to the
	// directory): the source's rule (.sourceignore), so a directory source
	// is read as its digest covers it.
	Exclude func(rel string, d fs.DirEntry) bool
	// Decrypt decrypts a SOPS-encrypted document in place: its values,
	// and its sops metadata removed (internal/secrets.Decryptor). Nil
	// refuses every encrypted document. Documents are decoded in
	// parallel, so it may be called from several goroutines at once.
	Decrypt func(root *yaml.Node) error
}

func (o Options) namespace() string {
	if o.DefaultNamespace == "" {
		return "default"
	}
	return o.DefaultNamespace
}

// Set is everything decoded from one directory (or one file).
type Set struct {
	Root string
	// Tree is the source tree Root belongs to (Options.Root, or Root): where
	// the readers of other files named by the source (Butane's) resolve
	// symlinks. Empty for Parse.
	Tree string
	// Objects are in lexical file path order, documents in file order. Only
	// documents whose identity is known are here.
	Objects []*Object
	// Diags holds every diagnostic of every file, sorted.
	Diags diag.List
	// Incomplete is true when a document's identity (apiVersion, kind, name)
	// could not be determined: YAML syntax error, missing/unknown kind or
	// apiVersion, missing name, unreadable file. The reconciler suspends pruning
	// for such a commit (SPEC M-3), since it cannot know what was deleted.
	Incomplete bool
	// Files counts the manifest files read.
	Files int
}

// OfKind returns the objects of one kind, in Set order.
func (s *Set) OfKind(kind string) []*Object {
	var out []*Object
	for _, o := range s.Objects {
		if o.Ref.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// Load reads every *.yaml and *.yml file under dir, recursively. Hidden
// directories and files (.git, .github, .pre-commit-config.yaml) are skipped:
// they hold tooling, not manifests. Other files (Butane *.bu, READMEs) are
// ignored. The error is non-nil only when dir itself cannot be read; problems
// below it are diagnostics.
//
// Symlinks follow the source tree's one rule: a link to a file inside
// Options.Root is read like the file; a link that leaves the tree, and a
// link to a directory (which may hold manifests nodevirt will not walk), is
// refused with an error naming it, whatever its name, and makes the set
// Incomplete, as a file that does not parse does. Butane files are left to
// nodeconfig, which applies the same rule. Files over MaxFileBytes are
// refused.
func Load(dir string, opt Options) (*Set, error) {
	if _, err := os.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("load manifests: %w", err)
	}
	root := opt.Root
	if root == "" {
		root = dir
	}
	prefix, err := filepath.Rel(root, dir)
	if err != nil || !filepath.IsLocal(prefix) {
		return nil, fmt.Errorf("load manifests: %s is not inside the source tree %s", dir, root)
	}
	inTree := func(f string) string { return path.Join(filepath.ToSlash(prefix), f) }
	s := &Set{Root: dir, Tree: root}
	var files []string
	walkErr := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// An unreadable subdirectory may hold manifests we now cannot see.
			s.Incomplete = true
			s.Diags = append(s.Diags, fileError(relPath(dir, p), fmt.Errorf("%w: %w", ErrRead, err)))
			return nil
		}
		if p != dir && opt.Exclude != nil && opt.Exclude(relPath(dir, p), d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		hidden := p != dir && strings.HasPrefix(d.Name(), ".")
		if d.IsDir() {
			if hidden {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(p)
		manifest := !hidden && (ext == ".yaml" || ext == ".yml")
		if d.Type()&fs.ModeSymlink != 0 && !hidden && ext != ".bu" && !manifest {
			// Not a manifest by name, but it may lead to a directory of
			// them or out of the tree: what it holds is unknown.
			rel := relPath(dir, p)
			_, fi, err := srctree.Resolve(root, inTree(rel))
			switch {
			case err != nil && !errors.Is(err, fs.ErrNotExist):
				s.Incomplete = true
				s.Diags = append(s.Diags, fileError(rel, fmt.Errorf("%w: %w", ErrRead, err)))
			case err == nil && fi.IsDir():
				s.Incomplete = true
				s.Diags = append(s.Diags, fileError(rel, fmt.Errorf("%w: symlink %s %w", ErrRead, rel, srctree.ErrDirLink)))
			}
			return nil
		}
		if manifest {
			files = append(files, relPath(dir, p))
		}
		return nil
	})
	if walkErr != nil {
		return nil, fmt.Errorf("load manifests: %w", walkErr)
	}
	sort.Strings(files)
	workers := runtime.GOMAXPROCS(0)
	d := newDecoder(opt, workers)
	// Files are read and parsed up to workers at a time, each into its own
	// list of parts; their documents share the decoder's workers.
	perFile := make([]*parts, len(files))
	read := make([]bool, len(files))
	sem := make(chan struct{}, workers)
	var readers sync.WaitGroup
	for i, f := range files {
		sem <- struct{}{}
		readers.Add(1)
		go func() {
			defer func() { <-sem; readers.Done() }()
			defer d.recover()
			ps := &parts{}
			perFile[i] = ps
			data, err := srctree.ReadFile(root, inTree(f), MaxFileBytes)
			if err != nil {
				p := ps.next()
				p.Incomplete = true
				p.Diags = append(p.Diags, fileError(f, fmt.Errorf("%w: %w", ErrRead, err)))
				return
			}
			read[i] = true
			d.file(ps, f, data)
		}()
	}
	readers.Wait()
	for _, ok := range read {
		if ok {
			s.Files++
		}
	}
	d.wait(s, perFile...)
	s.finish()
	return s, nil
}

// Parse decodes one file's content; file names it in diagnostics.
func Parse(file string, data []byte, opt Options) *Set {
	return parseWith(file, data, opt, runtime.GOMAXPROCS(0))
}

func parseWith(file string, data []byte, opt Options, workers int) *Set {
	s := &Set{Files: 1}
	d := newDecoder(opt, workers)
	ps := &parts{}
	d.file(ps, file, data)
	d.wait(s, ps)
	s.finish()
	return s
}

// decoder decodes the documents of one Load or Parse. Turning a document
// into an object (conversion, the schema walk, decoding, defaults and
// checks) needs nothing from its neighbours, so that runs on workers, each
// document into its own part. A file cut into one piece per document (see
// splitDocuments) has its pieces parsed on the workers too; other files are
// parsed one document after the other. The parts are merged in file and
// document order, so the result is the same as decoding one document after
// the other. The job queue is short: the parser waits for the workers
// rather than holding every document's node tree at once.
type decoder struct {
	opt     Options
	workers int
	batch   int // bytes of pieces a worker parses with one parser
	jobs    chan docJob
	wg      sync.WaitGroup
	// panicked holds a worker's or reader's panic, raised again in wait,
	// on the caller's goroutine, where it would have been raised before.
	panicked chan any
}

// parts are the results of one file's documents, in document order.
type parts struct{ list []*Set }

// next returns a new, empty part for the file's next document or problem.
func (ps *parts) next() *Set {
	p := &Set{}
	ps.list = append(ps.list, p)
	return p
}

// recover, deferred, keeps a panic for wait to raise.
func (d *decoder) recover() {
	if r := recover(); r != nil {
		select {
		case d.panicked <- r:
		default: // one is enough
		}
	}
}

type docJob struct {
	file string
	n    int // the document's number in its file, 1-based
	doc  *yaml.Node
	out  *Set
	// split is set for the documents of a file cut into pieces (see
	// splitDocuments): doc, or when it is nil, the documents of text, a
	// run of pieces, one into each of outs.
	split *splitFile
	text  []byte
	line  int // lines of the file before text
	outs  []*Set
}

func newDecoder(opt Options, workers int) *decoder {
	workers = max(workers, 1)
	d := &decoder{opt: opt, workers: workers, batch: batchBytes, jobs: make(chan docJob, workers), panicked: make(chan any, 1)}
	for range workers {
		d.wg.Add(1)
		go d.work()
	}
	return d
}

func (d *decoder) work() {
	defer d.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			select {
			case d.panicked <- r:
			default:
			}
			for j := range d.jobs { // let the parsers finish; wait re-raises
				if j.split != nil {
					j.split.wg.Done()
				}
			}
		}
	}()
	// What the schema walk reads of a Go type is the same for every
	// document: one table per worker, so it is worked out once, not once
	// per document.
	types := &typeTables{}
	for j := range d.jobs {
		if j.split != nil {
			d.pieceJob(j, types)
			continue
		}
		j.out.parseDocumentAt(j.file, j.n, j.doc, d.opt, types)
	}
}

// wait waits for the workers and merges every file's parts into s, in
// file and document order.
func (d *decoder) wait(s *Set, files ...*parts) {
	close(d.jobs)
	d.wg.Wait()
	select {
	case r := <-d.panicked:
		panic(r)
	default:
	}
	n := 0
	for _, ps := range files {
		for _, p := range ps.list {
			n += len(p.Objects)
		}
	}
	s.Objects = slices.Grow(s.Objects, n)
	for _, ps := range files {
		for _, p := range ps.list {
			s.Objects = append(s.Objects, p.Objects...)
			s.Diags = append(s.Diags, p.Diags...)
			s.Incomplete = s.Incomplete || p.Incomplete
		}
	}
}

func relPath(root, p string) string {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		rel = p
	}
	return filepath.ToSlash(rel)
}

func fileError(file string, err error) diag.Diagnostic {
	return diag.Diagnostic{Severity: diag.Error, File: file, Message: err.Error(), Err: err}
}

// yamlErrLine matches go.yaml.in/yaml/v3 parser errors ("yaml: line 7: ...").
var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// file decodes the documents of one file on the workers, each into its
// part in ps.
func (d *decoder) file(ps *parts, file string, data []byte) {
	if len(data) > MaxFileBytes {
		p := ps.next()
		p.Incomplete = true
		p.Diags = append(p.Diags, fileError(file, fmt.Errorf("%w: %w", ErrRead, ErrFileTooLarge)))
		return
	}
	if d.workers > 1 && d.pieces(ps, file, data) {
		return
	}
	d.sequential(ps, file, data)
}

// sequential reads the documents of one file one after the other and
// queues each for a worker, its part in ps.
func (d *decoder) sequential(ps *parts, file string, data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	resumed := 0 // the line of the document marker reading resumed at
	for n := 1; ; n++ {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			// The broken document is unknown, so the set is incomplete.
			p := ps.next()
			p.Incomplete = true
			diag := fileError(file, fmt.Errorf("%w: %s", ErrSyntax, strings.TrimPrefix(err.Error(), "yaml: ")))
			if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
				line, _ := strconv.Atoi(m[1])
				diag.Line = syntaxLine(line, m[2])
				diag.Err = fmt.Errorf("%w: %s", ErrSyntax, m[2])
				diag.Message = diag.Err.Error()
			}
			p.Diags = append(p.Diags, diag)
			// The parser cannot resume, but the documents after the
			// broken one can be read on their own: their errors are
			// reported in the same pass.
			rest, at, ok := nextDocument(data, max(diag.Line, resumed))
			if !ok {
				return
			}
			resumed = at
			dec = yaml.NewDecoder(bytes.NewReader(rest))
			continue
		}
		d.jobs <- docJob{file: file, n: n, doc: doc, out: ps.next()}
	}
}

// parseDocumentAt checks the size of document n of file, then decodes it.
func (s *Set) parseDocumentAt(file string, n int, doc *yaml.Node, opt Options, types *typeTables) {
	if err := checkDocument(doc); err != nil {
		// Its identity is unknown: converting it is what would take
		// the memory.
		s.Incomplete = true
		d := fileError(file, fmt.Errorf("document %d: %w", n, err))
		d.Line = doc.Line
		s.Diags = append(s.Diags, d)
		return
	}
	s.parseDocument(file, doc, opt, types)
}

// syntaxLine corrects go.yaml.in/yaml/v3's line numbers: scanner errors carry
// the 1-based line of the problem, but parser errors the 0-based line where the
// enclosing block or flow collection starts. The parser's messages are few and
// fixed, so they can be told apart by text.
func syntaxLine(line int, msg string) int {
	switch {
	case strings.HasPrefix(msg, "did not find expected"),
		strings.HasPrefix(msg, "found duplicate %"),
		strings.HasPrefix(msg, "found undefined tag handle"),
		msg == "found incompatible YAML document":
		return line + 1
	}
	return line
}

// nextDocument returns data with everything before the first document marker
// ("---" at the start of a line) after line turned into empty lines, so
// positions stay those of the file, and the marker's line; ok is false when
// there is none (or the line of the error is not known).
func nextDocument(data []byte, line int) (rest []byte, at int, ok bool) {
	if line <= 0 {
		return nil, 0, false
	}
	start := 0
	for i := 1; start < len(data); i++ {
		end := bytes.IndexByte(data[start:], '\n')
		next := len(data)
		if end >= 0 {
			next = start + end + 1
		}
		text := bytes.TrimRight(data[start:next], "\r\n")
		if i > line && bytes.HasPrefix(text, []byte("---")) && (len(text) == 3 || text[3] == ' ' || text[3] == '\t') {
			out := make([]byte, 0, i-1+len(data)-start)
			out = append(out, bytes.Repeat([]byte("\n"), i-1)...)
			return append(out, data[start:]...), i, true
		}
		start = next
	}
	return nil, 0, false
}
