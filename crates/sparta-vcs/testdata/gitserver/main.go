// Command gitserver serves the git repositories under -root over smart HTTP
// through `git http-backend` (CGI), optionally behind basic auth, and answers
// `?go-get=1` with the go-import meta tag given by -meta. Test use only: it
// listens on loopback and prints its address on the first line of stdout.
package main

import (
	"flag"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"strings"
)

func main() {
	root := flag.String("root", "", "directory holding the repositories")
	auth := flag.String("auth", "", "user:password required by basic auth (empty: none)")
	meta := flag.String("meta", "", "content of the go-import meta tag for ?go-get=1")
	flag.Parse()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + *root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("go-get") == "1" {
			fmt.Fprintf(w, "<html><head><meta name=\"go-import\" content=\"%s\"></head><body></body></html>\n", html.EscapeString(*meta))
			return
		}
		if *auth != "" {
			user, pass, ok := r.BasicAuth()
			if !ok || user+":"+pass != *auth {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		if strings.Contains(r.URL.Path, "..") {
			http.NotFound(w, r)
			return
		}
		backend.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	if err := http.Serve(ln, handler); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
