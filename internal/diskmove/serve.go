package diskmove

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// ChunkSize is how much of a disk one request carries and one SHA-256
// covers: an interruption costs at most this much again.
const ChunkSize = 64 << 20

// maxChunkSize bounds what a puller accepts from a manifest, so a broken
// peer cannot make it buffer without end.
const maxChunkSize = 1 << 30

// Manifest lists a disk's chunks: chunk i is bytes [i·ChunkSize,
// min((i+1)·ChunkSize, Size)) and Chunks[i] is their SHA-256 in hex.
type Manifest struct {
	Size      int64    `json:"size"`
	ChunkSize int64    `json:"chunkSize"`
	Chunks    []string `json:"chunks"`
}

// Validate checks that the chunks cover Size exactly.
func (m Manifest) Validate() error {
	if m.Size < 0 {
		return fmt.Errorf("manifest: negative size %d", m.Size)
	}
	if m.ChunkSize <= 0 || m.ChunkSize > maxChunkSize {
		return fmt.Errorf("manifest: chunk size %d out of (0, %d]", m.ChunkSize, maxChunkSize)
	}
	if want := (m.Size + m.ChunkSize - 1) / m.ChunkSize; int64(len(m.Chunks)) != want {
		return fmt.Errorf("manifest: %d chunks for %d bytes in chunks of %d, want %d", len(m.Chunks), m.Size, m.ChunkSize, want)
	}
	for i, h := range m.Chunks {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("manifest: chunk %d: %q is no SHA-256", i, h)
		}
	}
	return nil
}

// span is chunk i's offset and length.
func (m Manifest) span(i int) (off, n int64) {
	off = int64(i) * m.ChunkSize
	return off, min(m.ChunkSize, m.Size-off)
}

// Exporter decides whether a volume's disk may leave this node for peer,
// and where its file is: only while no VM uses it here and the applied
// commit places the volume on peer. An error says why not.
type Exporter interface {
	Export(ctx context.Context, pv, peer string) (file string, err error)
}

// ErrNotServed wraps an Exporter's refusal of a volume that exists here.
var ErrNotServed = errors.New("volume not served")

// Server serves disks to the peers an Exporter allows.
type Server struct {
	Exporter Exporter
	// Peers returns the peers' CAs as the fleet's reports publish them now.
	Peers func() (Peers, error)
	// ChunkSize is the manifest's chunk size; 0 is ChunkSize.
	ChunkSize int64
	Log       *slog.Logger
}

// Handler serves GET prefix/{pv}/manifest (a Manifest in JSON) and GET
// prefix/{pv}/chunks/{index} (the chunk's bytes, its SHA-256 in the
// X-Chunk-Sha256 header).
func (s *Server) Handler(prefix string) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	m := http.NewServeMux()
	m.HandleFunc("GET "+prefix+"/{pv}/manifest", s.manifest)
	m.HandleFunc("GET "+prefix+"/{pv}/chunks/{index}", s.chunk)
	return m
}

// open authenticates the peer and opens the file the Exporter names; on
// failure it has answered already.
func (s *Server) open(w http.ResponseWriter, r *http.Request) (*os.File, int64, string, bool) {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pv := r.PathValue("pv")
	if r.TLS == nil {
		http.Error(w, "disks are served over TLS only", http.StatusForbidden)
		return nil, 0, "", false
	}
	peers, err := s.Peers()
	if err != nil {
		log.Warn("some peers' CAs are unreadable", "error", err)
	}
	peer, err := peers.Node(r.TLS.PeerCertificates)
	if err != nil {
		log.Warn("disk request refused", "pv", pv, "remote", r.RemoteAddr, "reason", err.Error())
		http.Error(w, err.Error(), http.StatusForbidden)
		return nil, 0, "", false
	}
	file, err := s.Exporter.Export(r.Context(), pv, peer)
	if err != nil {
		code := http.StatusForbidden
		if errors.Is(err, os.ErrNotExist) {
			code = http.StatusNotFound
		}
		log.Info("disk not served", "pv", pv, "peer", peer, "reason", err.Error())
		http.Error(w, fmt.Sprintf("volume %s for node %s: %v", pv, peer, err), code)
		return nil, 0, "", false
	}
	f, err := os.Open(file)
	if err != nil {
		http.Error(w, fmt.Sprintf("volume %s: %v", pv, err), http.StatusInternalServerError)
		return nil, 0, "", false
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		http.Error(w, fmt.Sprintf("volume %s: %v", pv, err), http.StatusInternalServerError)
		return nil, 0, "", false
	}
	return f, st.Size(), peer, true
}

func (s *Server) chunkSize() int64 {
	if s.ChunkSize > 0 {
		return s.ChunkSize
	}
	return ChunkSize
}

func (s *Server) manifest(w http.ResponseWriter, r *http.Request) {
	f, size, _, ok := s.open(w, r)
	if !ok {
		return
	}
	defer f.Close()
	m, err := Describe(r.Context(), f, size, s.chunkSize())
	if err != nil {
		http.Error(w, fmt.Sprintf("volume %s: %v", r.PathValue("pv"), err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = writeJSON(w, m)
}

func (s *Server) chunk(w http.ResponseWriter, r *http.Request) {
	i, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || i < 0 {
		http.Error(w, fmt.Sprintf("chunk index %q: not a non-negative integer", r.PathValue("index")), http.StatusBadRequest)
		return
	}
	f, size, _, ok := s.open(w, r)
	if !ok {
		return
	}
	defer f.Close()
	m := Manifest{Size: size, ChunkSize: s.chunkSize()}
	if int64(i)*m.ChunkSize >= size && !(i == 0 && size == 0) {
		http.Error(w, fmt.Sprintf("chunk %d is past the end of %d bytes", i, size), http.StatusRequestedRangeNotSatisfiable)
		return
	}
	off, n := m.span(i)
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.Header().Set("X-Chunk-Sha256", hex.EncodeToString(h.Sum(nil)))
	_, _ = io.Copy(w, io.NewSectionReader(f, off, n))
}

// Describe hashes the first size bytes of r by chunks of chunkSize.
func Describe(ctx context.Context, r io.ReaderAt, size, chunkSize int64) (Manifest, error) {
	m := Manifest{Size: size, ChunkSize: chunkSize, Chunks: []string{}}
	for off := int64(0); off < size; off += chunkSize {
		if err := ctx.Err(); err != nil {
			return Manifest{}, err
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(r, off, min(chunkSize, size-off))); err != nil {
			return Manifest{}, fmt.Errorf("hash chunk at %d: %w", off, err)
		}
		m.Chunks = append(m.Chunks, hex.EncodeToString(h.Sum(nil)))
	}
	return m, nil
}
