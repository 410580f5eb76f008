package host

import (
	"fmt"
	"strings"
	"testing"
)

func numbered(n int, mark func(i int) string) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %d%s\n", i, mark(i))
	}
	return []byte(b.String())
}

// A content change carries a unified diff of every changed hunk, not only
// the first differing line, and stays small for large files.
func TestContentChange(t *testing.T) {
	same := func(int) string { return "" }
	t.Run("every hunk", func(t *testing.T) {
		from := numbered(30, same)
		to := numbered(30, func(i int) string {
			if i == 2 || i == 25 {
				return " changed"
			}
			return ""
		})
		c := contentChange("/etc/x.conf", from, to)
		if c.Path != "contents" || !strings.HasPrefix(c.From, "230 bytes sha256:") || !strings.HasPrefix(c.To, "246 bytes sha256:") {
			t.Errorf("summary = %q: %q -> %q", c.Path, c.From, c.To)
		}
		for _, want := range []string{
			"\n--- /etc/x.conf (host)\n+++ /etc/x.conf (source)\n",
			"\n@@ -1,6 +1,6 @@\n", "\n-line 2\n+line 2 changed\n",
			"\n@@ -23,7 +23,7 @@\n", "\n-line 25\n+line 25 changed\n",
		} {
			if !strings.Contains(c.To, want) {
				t.Errorf("diff lacks %q:\n%s", want, c.To)
			}
		}
	})
	t.Run("missing final newline", func(t *testing.T) {
		c := contentChange("/etc/x", []byte("a\n"), []byte("a"))
		if !strings.HasSuffix(c.To, "\n-a\n+a\n\\ No newline at end of file") {
			t.Errorf("diff:\n%s", c.To)
		}
	})
	t.Run("long diff is cut", func(t *testing.T) {
		c := contentChange("/etc/x", numbered(500, same), numbered(500, func(int) string { return "!" }))
		lines := strings.Split(c.To, "\n")
		// Summary, 40 diff lines, the note: 3 header lines, 500 removed
		// and 500 added lines make 1003, so 963 are left out.
		if len(lines) != 1+maxDiffLines+1 || lines[len(lines)-1] != "... 963 more diff lines" {
			t.Errorf("%d lines, last %q", len(lines), lines[len(lines)-1])
		}
	})
	t.Run("long file is only summarised", func(t *testing.T) {
		long := numbered(maxDiffInputLines, same)
		c := contentChange("/etc/x", long, append([]byte("x\n"), long...))
		if !strings.HasSuffix(c.To, "\n(1000 and 1001 lines: too long to show a diff)") || strings.Count(c.To, "\n") != 1 {
			t.Errorf("to = %.200q", c.To)
		}
	})
	t.Run("binary", func(t *testing.T) {
		c := contentChange("/etc/x", []byte{0, 1}, []byte{0, 2})
		if strings.Contains(c.To, "\n") || c.From != "2 bytes sha256:"+hashBytes([]byte{0, 1})[:12] {
			t.Errorf("%q -> %q", c.From, c.To)
		}
	})
}
