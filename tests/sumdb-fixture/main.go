// Command sumdb-fixture is a checksum database for Sparta's tests. It reads
// go.sum-style lines (from a file or a URL such as the fixture upstream's
// /_fixture/sums), builds the signed tree over them at start-up and serves
// the sumdb protocol (/lookup/, /latest, /tile/) on loopback, also under
// /sumdb/<name>/ as a proxy would. It prints its verifier key and address
// and counts every request by path (GET /_sumdb/stats, POST /_sumdb/reset).
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	name := flag.String("name", "sumdb.sparta.test", "database name (used in signatures and /sumdb/<name>/)")
	key := flag.String("key", "", "signer key PRIVATE+KEY+<name>+<hash>+<key>; empty generates one")
	sums := flag.String("sums", "", "go.sum lines: a file path or an http:// URL")
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	addrFile := flag.String("addr-file", "", "write the bound address to this file once listening")
	exitOnEOF := flag.Bool("exit-on-stdin-eof", false, "exit when standard input closes (the parent died)")
	genKey := flag.Bool("gen-key", false, "print a new signer key and its verifier key, then exit")
	flag.Parse()

	if *genKey {
		skey, vkey, err := note.GenerateKey(rand.Reader, *name)
		if err != nil {
			log.Fatalf("sumdb-fixture: %v", err)
		}
		fmt.Printf("%s\n%s\n", skey, vkey)
		return
	}
	if *sums == "" {
		log.Fatal("sumdb-fixture: -sums is required")
	}
	skey, vkey := *key, ""
	if skey == "" {
		var err error
		if skey, vkey, err = note.GenerateKey(rand.Reader, *name); err != nil {
			log.Fatalf("sumdb-fixture: %v", err)
		}
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		log.Fatalf("sumdb-fixture: -key: %v", err)
	}
	if signer.Name() != *name {
		log.Fatalf("sumdb-fixture: key is for %q, not %q", signer.Name(), *name)
	}
	text, err := readSums(*sums)
	if err != nil {
		log.Fatalf("sumdb-fixture: -sums: %v", err)
	}
	db, err := build(text, signer)
	if err != nil {
		log.Fatalf("sumdb-fixture: %v", err)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("sumdb-fixture: listen: %v", err)
	}
	addr := ln.Addr().String()
	if vkey == "" {
		if vkey, err = verifierKey(skey); err != nil {
			log.Fatalf("sumdb-fixture: -key: %v", err)
		}
	}
	fmt.Printf("verifier key %s\n", vkey)
	fmt.Printf("records %d\n", len(db.records))
	fmt.Printf("listening on %s\n", addr)
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(addr), 0o644); err != nil {
			log.Fatalf("sumdb-fixture: addr-file: %v", err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatalf("sumdb-fixture: addr-file: %v", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *exitOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
			stop()
		}()
	}
	h := &handler{name: *name, srv: sumdb.NewServer(db), counts: map[string]int{}}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdownCtx)
	}()
	if err := hs.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("sumdb-fixture: serve: %v", err)
	}
}

// verifierKey derives the public verifier key from a signer key, which the
// note package does not expose.
func verifierKey(skey string) (string, error) {
	f := strings.SplitN(skey, "+", 5)
	if len(f) != 5 {
		return "", fmt.Errorf("malformed signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", fmt.Errorf("malformed signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(f[2], pub)
}

func readSums(src string) (string, error) {
	if strings.HasPrefix(src, "http://") {
		resp, err := http.Get(src)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", src, resp.Status)
		}
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	b, err := os.ReadFile(src)
	return string(b), err
}

// database holds the whole tree in memory; it never grows after start-up.
type database struct {
	signed  []byte
	records [][]byte
	hashes  []tlog.Hash
	ids     map[module.Version]int64
}

// build groups the lines by module version (zip line first, as the real
// database writes them), sorted for a deterministic tree, and signs its head.
func build(text string, signer note.Signer) (*database, error) {
	type entry struct{ zip, mod string }
	entries := map[module.Version]*entry{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || !strings.HasPrefix(f[2], "h1:") {
			return nil, fmt.Errorf("sums line %d: want \"<module> <version>[/go.mod] h1:<hash>\"", i+1)
		}
		vers, isMod := strings.CutSuffix(f[1], "/go.mod")
		mv := module.Version{Path: f[0], Version: vers}
		if err := module.Check(mv.Path, mv.Version); err != nil {
			return nil, fmt.Errorf("sums line %d: %v", i+1, err)
		}
		e := entries[mv]
		if e == nil {
			e = &entry{}
			entries[mv] = e
		}
		if isMod {
			e.mod = line + "\n"
		} else {
			e.zip = line + "\n"
		}
	}
	keys := make([]module.Version, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Path != keys[j].Path {
			return keys[i].Path < keys[j].Path
		}
		return keys[i].Version < keys[j].Version
	})
	db := &database{ids: map[module.Version]int64{}}
	for _, k := range keys {
		e := entries[k]
		data := []byte(e.zip + e.mod)
		id := int64(len(db.records))
		hashes, err := tlog.StoredHashesForRecordHash(id, tlog.RecordHash(data), hashList(db.hashes))
		if err != nil {
			return nil, err
		}
		db.hashes = append(db.hashes, hashes...)
		db.records = append(db.records, data)
		db.ids[k] = id
	}
	size := int64(len(db.records))
	root, err := tlog.TreeHash(size, hashList(db.hashes))
	if err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: size, Hash: root}))}, signer)
	if err != nil {
		return nil, err
	}
	db.signed = signed
	return db, nil
}

// hashList reads stored hashes by index; an index past the end is not found,
// so a tile beyond the tree is a 404 rather than a crash.
type hashList []tlog.Hash

func (h hashList) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(h)) {
			return nil, os.ErrNotExist
		}
		out[i] = h[x]
	}
	return out, nil
}

func (db *database) Signed(ctx context.Context) ([]byte, error) { return db.signed, nil }

func (db *database) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	if id < 0 || n < 0 || id+n > int64(len(db.records)) {
		return nil, os.ErrNotExist
	}
	return db.records[id : id+n], nil
}

func (db *database) Lookup(ctx context.Context, m module.Version) (int64, error) {
	id, ok := db.ids[m]
	if !ok {
		return 0, os.ErrNotExist
	}
	return id, nil
}

func (db *database) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	// Only tiles of the signed tree exist, as on a real database.
	if max := int64(len(db.records)) >> uint(t.H*t.L); t.N<<uint(t.H)+int64(t.W) > max {
		return nil, os.ErrNotExist
	}
	return tlog.ReadTileData(t, hashList(db.hashes))
}

type handler struct {
	name string
	srv  *sumdb.Server

	mu     sync.Mutex
	counts map[string]int
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_sumdb/stats":
		h.mu.Lock()
		body, _ := json.Marshal(h.counts)
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(body, '\n'))
		return
	case "/_sumdb/reset":
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		h.mu.Lock()
		h.counts = map[string]int{}
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.mu.Lock()
	h.counts[r.URL.Path]++
	h.mu.Unlock()

	// Also answer as a proxy that relays this database would.
	prefix := "/sumdb/" + h.name
	if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok {
		if rest == "/supported" {
			w.WriteHeader(http.StatusOK)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = rest
		h.srv.ServeHTTP(w, r2)
		return
	}
	h.srv.ServeHTTP(w, r)
}
