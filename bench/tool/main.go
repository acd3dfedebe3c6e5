// Command benchtool does the parts of `make bench` that a shell does badly:
// listing the fixture's proxy paths, mirroring them with byte checks, the
// concurrent cold-request (dedup) burst, start-up timing, checksum checks and
// the replay of a recorded download's requests.
// Every subcommand prints `key=value` lines for bench/run.sh and exits
// non-zero when something is broken, never because something is slow.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: benchtool paths|mirror|dedup|startup|freeport|sums|sumcheck|replay [flags]")
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "paths":
		err = paths(args)
	case "mirror":
		err = mirror(args)
	case "dedup":
		err = dedup(args)
	case "startup":
		err = startup(args)
	case "freeport":
		err = freeport()
	case "sums":
		err = sums(args)
	case "sumcheck":
		err = sumcheck(args)
	case "replay":
		err = replay(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", cmd)
	}
	if err != nil {
		fail(cmd + ": " + err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "benchtool: "+msg)
	os.Exit(1)
}

// escape applies the module proxy's case escaping: each upper-case letter
// becomes '!' and its lower-case form.
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			b.WriteRune(r + ('a' - 'A'))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

var client = &http.Client{
	Timeout: 60 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
	},
}

func get(url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}

// paths prints the proxy paths of the fixture's module versions whose
// module path starts with -prefix, one file kind after another.
func paths(args []string) error {
	fs := flag.NewFlagSet("paths", flag.ExitOnError)
	fixture := fs.String("fixture", "", "fixture base URL")
	prefix := fs.String("prefix", "", "only modules whose path starts with this")
	kinds := fs.String("kinds", "info,mod", "comma-separated file kinds")
	fs.Parse(args)
	body, err := get(*fixture + "/_fixture/modules")
	if err != nil {
		return err
	}
	mods := map[string][]string{}
	if err := json.Unmarshal(body, &mods); err != nil {
		return err
	}
	names := make([]string, 0, len(mods))
	for p := range mods {
		if strings.HasPrefix(p, *prefix) {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for _, kind := range strings.Split(*kinds, ",") {
		for _, p := range names {
			for _, v := range mods[p] {
				fmt.Fprintf(w, "/%s/@v/%s.%s\n", escape(p), escape(v), kind)
			}
		}
	}
	return nil
}

func readLines(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

// mirror fetches every path (read from stdin) from -base, checks the bytes
// against the fixture's true bytes, and writes them under -out laid out like
// the URLs, so a static file server can serve the same answers.
func mirror(args []string) error {
	fs := flag.NewFlagSet("mirror", flag.ExitOnError)
	base := fs.String("base", "", "server to fetch from")
	fixture := fs.String("fixture", "", "fixture base URL for the true bytes")
	out := fs.String("out", "", "directory to write the files to (optional)")
	conc := fs.Int("c", 8, "concurrent requests")
	fs.Parse(args)
	list, err := readLines(os.Stdin)
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		errs  []error
		bytes int64
		wg    sync.WaitGroup
	)
	work := make(chan string)
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				n, err := mirrorOne(*base, *fixture, *out, p)
				mu.Lock()
				bytes += n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range list {
		work <- p
	}
	close(work)
	wg.Wait()
	fmt.Printf("files=%d bytes=%d errors=%d\n", len(list), bytes, len(errs))
	if len(errs) > 0 {
		return errors.Join(errs[:min(len(errs), 5)]...)
	}
	return nil
}

func mirrorOne(base, fixture, out, p string) (int64, error) {
	got, err := get(base + p)
	if err != nil {
		return 0, err
	}
	if fixture != "" {
		want, err := get(fixture + "/_fixture/raw" + p)
		if err != nil {
			return 0, err
		}
		if !bytes.Equal(got, want) {
			return 0, fmt.Errorf("%s: %d bytes differ from the fixture's %d", p, len(got), len(want))
		}
	}
	if out != "" {
		dst := filepath.Join(out, filepath.FromSlash(strings.TrimPrefix(p, "/")))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(dst, got, 0o644); err != nil {
			return 0, err
		}
	}
	return int64(len(got)), nil
}

// dedup sends -n concurrent requests for each path (arguments) at once to a
// cold server, checks every body against the fixture, and counts how many
// requests for each path reached the fixture.
func dedup(args []string) error {
	fs := flag.NewFlagSet("dedup", flag.ExitOnError)
	base := fs.String("base", "", "server under test (cold)")
	fixture := fs.String("fixture", "", "fixture base URL (its counters are reset first)")
	n := fs.Int("n", 100, "concurrent requests per path")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	fs.Parse(args)
	list := fs.Args()
	if len(list) == 0 {
		return errors.New("no paths")
	}
	want := map[string][32]byte{}
	for _, p := range list {
		body, err := get(*fixture + "/_fixture/raw" + p)
		if err != nil {
			return err
		}
		want[p] = sha256.Sum256(body)
	}
	resp, err := client.Post(*fixture+"/_fixture/reset", "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()

	// One connection per request: the burst is what many go commands and
	// CI jobs do at once, not one client pipelining.
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true, DisableCompression: true, MaxConnsPerHost: 0}
	c := &http.Client{Transport: tr, Timeout: *timeout}
	start := make(chan struct{})
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
		ready  sync.WaitGroup
	)
	total := *n * len(list)
	ready.Add(total)
	var began time.Time
	for _, p := range list {
		for i := 0; i < *n; i++ {
			wg.Add(1)
			go func(p string) {
				defer wg.Done()
				ready.Done()
				<-start
				err := func() error {
					resp, err := c.Get(*base + p)
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					h := sha256.New()
					if _, err := io.Copy(h, resp.Body); err != nil {
						return err
					}
					if resp.StatusCode != http.StatusOK {
						return fmt.Errorf("status %d", resp.StatusCode)
					}
					var sum [32]byte
					copy(sum[:], h.Sum(nil))
					if sum != want[p] {
						return errors.New("body differs from the fixture")
					}
					return nil
				}()
				if err != nil {
					mu.Lock()
					failed = append(failed, p+": "+err.Error())
					mu.Unlock()
				}
			}(p)
		}
	}
	ready.Wait()
	began = time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)

	body, err := get(*fixture + "/_fixture/stats")
	if err != nil {
		return err
	}
	counts := map[string]int{}
	if err := json.Unmarshal(body, &counts); err != nil {
		return err
	}
	same, upTotal, upPaths := 0, 0, 0
	for path, c := range counts {
		upTotal += c
		if _, ok := want[path]; ok {
			upPaths += c
		}
	}
	for _, p := range list {
		if counts[p] == 1 {
			same++
		}
	}
	fmt.Printf("paths=%d requests=%d failed=%d elapsed_ms=%.1f upstream_for_paths=%d upstream_total=%d paths_fetched_once=%d\n",
		len(list), total, len(failed), float64(elapsed.Microseconds())/1000, upPaths, upTotal, same)
	if len(failed) > 0 {
		return fmt.Errorf("%d requests failed, e.g. %s", len(failed), failed[0])
	}
	return nil
}

// startup starts the command after `--` -n times and measures the time from
// exec to the first 200 from /readyz at the address the process writes to
// -ready-file; each start is stopped with SIGTERM before the next.
func startup(args []string) error {
	fs := flag.NewFlagSet("startup", flag.ExitOnError)
	n := fs.Int("n", 10, "starts")
	readyFile := fs.String("ready-file", "", "file the server writes its address to (must be in the command)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on one start after this long")
	fs.Parse(args)
	argv := fs.Args()
	if len(argv) == 0 || *readyFile == "" {
		return errors.New("need -ready-file and a command after --")
	}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	var times []float64
	for i := 0; i < *n; i++ {
		os.Remove(*readyFile)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		began := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		ms, err := waitReady(c, *readyFile, began, *timeout, exited)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if err != nil {
			return fmt.Errorf("start %d: %w", i+1, err)
		}
		times = append(times, ms)
	}
	sort.Float64s(times)
	parts := make([]string, len(times))
	for i, t := range times {
		parts[i] = fmt.Sprintf("%.1f", t)
	}
	fmt.Printf("starts=%d median_ms=%.1f min_ms=%.1f max_ms=%.1f all_ms=%s\n",
		len(times), median(times), times[0], times[len(times)-1], strings.Join(parts, ","))
	return nil
}

func waitReady(c *http.Client, readyFile string, began time.Time, timeout time.Duration, exited <-chan error) (float64, error) {
	deadline := began.Add(timeout)
	addr := ""
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return 0, fmt.Errorf("server exited before ready: %v", err)
		default:
		}
		if addr == "" {
			if b, err := os.ReadFile(readyFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
				addr = strings.TrimSpace(string(b))
			} else {
				time.Sleep(200 * time.Microsecond)
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancel()
			if resp.StatusCode == http.StatusOK {
				return float64(time.Since(began).Microseconds()) / 1000, nil
			}
		} else {
			cancel()
		}
		time.Sleep(500 * time.Microsecond)
	}
	return 0, errors.New("not ready in time")
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func freeport() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}

// downloaded is one object of `go mod download -json` output.
type downloaded struct {
	Path, Version, Error, Sum, GoModSum, Zip string
}

func readDownloads(r io.Reader) ([]downloaded, error) {
	dec := json.NewDecoder(r)
	var out []downloaded
	for {
		var d downloaded
		err := dec.Decode(&d)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
}

// sums reads `go mod download -json` output on stdin, fails on any module
// with an error, and prints go.sum lines for what was downloaded.
func sums(args []string) error {
	ds, err := readDownloads(os.Stdin)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if d.Error != "" {
			return fmt.Errorf("%s@%s: %s", d.Path, d.Version, d.Error)
		}
		if d.Sum != "" {
			fmt.Printf("%s %s %s\n", d.Path, d.Version, d.Sum)
		}
		if d.GoModSum != "" {
			fmt.Printf("%s %s/go.mod %s\n", d.Path, d.Version, d.GoModSum)
		}
	}
	return nil
}

// sumcheck reads `go mod download -json` output on stdin and checks every
// module's hashes against the go.sum-format file -want; -min is the fewest
// modules with a zip that must have been downloaded.
func sumcheck(args []string) error {
	fs := flag.NewFlagSet("sumcheck", flag.ExitOnError)
	wantFile := fs.String("want", "", "go.sum-format file with the true hashes")
	minZips := fs.Int("min", 1, "fewest zips expected")
	fs.Parse(args)
	raw, err := os.ReadFile(*wantFile)
	if err != nil {
		return err
	}
	want := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 {
			want[f[0]+" "+f[1]] = f[2]
		}
	}
	ds, err := readDownloads(os.Stdin)
	if err != nil {
		return err
	}
	zips := 0
	for _, d := range ds {
		if d.Error != "" {
			return fmt.Errorf("%s@%s: %s", d.Path, d.Version, d.Error)
		}
		if d.Sum != "" {
			if w := want[d.Path+" "+d.Version]; w != d.Sum {
				return fmt.Errorf("%s@%s: zip hash %s, want %q", d.Path, d.Version, d.Sum, w)
			}
			zips++
		}
		if d.GoModSum != "" {
			if w := want[d.Path+" "+d.Version+"/go.mod"]; w != d.GoModSum {
				return fmt.Errorf("%s@%s: go.mod hash %s, want %q", d.Path, d.Version, d.GoModSum, w)
			}
		}
	}
	if zips < *minZips {
		return fmt.Errorf("%d zips downloaded, want at least %d", zips, *minZips)
	}
	fmt.Printf("modules=%d zips=%d\n", len(ds), zips)
	return nil
}

// replay sends the request paths on stdin (one a line, in the order they
// were recorded) to -base with -c requests in flight, -runs times, reading
// every body to the end; it prints the median and every run's time. This is
// the proxy's side of a download, without the client's own work (hashing,
// unpacking into the module cache). Any status other than 200 fails it.
func replay(args []string) error {
	fs := flag.NewFlagSet("replay", flag.ExitOnError)
	base := fs.String("base", "", "server to replay against")
	conc := fs.Int("c", 1, "requests in flight")
	runs := fs.Int("runs", 1, "replays (median reported)")
	fs.Parse(args)
	list, err := readLines(os.Stdin)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		return errors.New("no paths on stdin")
	}
	if *conc < 1 || *runs < 1 {
		return errors.New("-c and -runs must be at least 1")
	}
	var times []float64
	var bytesRead int64
	for r := 0; r < *runs; r++ {
		next := make(chan string)
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			failed []string
			total  int64
		)
		began := time.Now()
		for w := 0; w < *conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range next {
					n, err := fetchDiscard(*base + p)
					mu.Lock()
					total += n
					if err != nil {
						failed = append(failed, err.Error())
					}
					mu.Unlock()
				}
			}()
		}
		for _, p := range list {
			next <- p
		}
		close(next)
		wg.Wait()
		times = append(times, float64(time.Since(began).Microseconds())/1000)
		if len(failed) > 0 {
			return fmt.Errorf("run %d: %d of %d requests failed, e.g. %s", r+1, len(failed), len(list), failed[0])
		}
		bytesRead = total
	}
	all := make([]string, len(times))
	for i, t := range times {
		all[i] = fmt.Sprintf("%.1f", t)
	}
	sort.Float64s(times)
	fmt.Printf("requests=%d bytes=%d concurrency=%d median_ms=%.1f all_ms=%s\n",
		len(list), bytesRead, *conc, median(times), strings.Join(all, ","))
	return nil
}

// fetchDiscard GETs url and reads the body to the end; it returns the bytes read.
func fetchDiscard(url string) (int64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return n, nil
}
