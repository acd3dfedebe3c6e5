// Command gitserver serves git repositories made by Sparta's end-to-end
// tests over real smart HTTP (`git http-backend` behind net/http/cgi), and
// answers `?go-get=1` with go-import meta tags, as an internal git host
// would. Repositories under /private/ need basic auth. It never leaves
// loopback: the tests point module paths at it with a git `insteadOf` (the
// go command) and a `--vcs-map` (Sparta).
//
// Requests are counted by path (without the query) at /_git/stats, so a test
// can prove what reached the git host.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"strings"
	"sync"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	root := flag.String("root", "", "directory holding the bare repositories (GIT_PROJECT_ROOT)")
	host := flag.String("host", "git.sparta.test", "host name the module paths use")
	user := flag.String("user", "sparta", "basic auth user for /private/")
	pass := flag.String("pass", "secret", "basic auth password for /private/")
	metaTarget := flag.String("meta-target", "http://169.254.169.254/latest/meta-data.git",
		"repository URL that /evil/ meta tags point at (a cloud metadata address)")
	exitOnEOF := flag.Bool("exit-on-stdin-eof", false, "exit when standard input closes (the parent died)")
	flag.Parse()
	if *root == "" {
		log.Fatal("gitserver: --root is required")
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		log.Fatalf("gitserver: git not found: %v", err)
	}
	execPath, err := exec.Command(gitPath, "--exec-path").Output()
	if err != nil {
		log.Fatalf("gitserver: git --exec-path: %v", err)
	}
	backend := &cgi.Handler{
		Path: strings.TrimSpace(string(execPath)) + "/git-http-backend",
		Dir:  *root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + *root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
		},
	}
	s := &server{backend: backend, host: *host, user: *user, pass: *pass, metaTarget: *metaTarget,
		counts: map[string]uint64{}}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("gitserver: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	if *exitOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
	fmt.Printf("listening on %s\n", s.addr)
	log.Fatal(http.Serve(ln, s))
}

type server struct {
	backend    *cgi.Handler
	host       string
	addr       string
	user, pass string
	metaTarget string
	mu         sync.Mutex
	counts     map[string]uint64
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_git/stats" {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.counts)
		return
	}
	s.mu.Lock()
	s.counts[r.URL.Path]++
	s.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/private/") {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.user || p != s.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
	}
	if r.URL.Query().Get("go-get") == "1" {
		s.goGet(w, r)
		return
	}
	s.backend.ServeHTTP(w, r)
}

// goGet answers with the go-import tag of the repository the path is in:
// the first element for /name/..., the first two for /private/ and /group/
// (a subgroup, as GitLab has). /evil/ points at the metadata address.
func (s *server) goGet(w http.ResponseWriter, r *http.Request) {
	elems := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	n := 1
	if elems[0] == "private" || elems[0] == "group" {
		n = 2
	}
	if len(elems) < n || elems[0] == "" {
		http.NotFound(w, r)
		return
	}
	repo := strings.Join(elems[:n], "/")
	prefix := s.host + "/" + repo
	target := "http://" + s.addr + "/" + repo + ".git"
	if elems[0] == "evil" {
		target = s.metaTarget
	} else if _, err := os.Stat(s.backend.Dir + "/" + repo + ".git"); err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html><html><head><meta name=\"go-import\" content=\"%s git %s\"></head><body></body></html>\n",
		html.EscapeString(prefix), html.EscapeString(target))
}
