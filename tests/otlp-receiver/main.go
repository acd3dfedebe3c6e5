// Command otlp-receiver is a small OpenTelemetry trace receiver for Sparta's
// end-to-end tests: it accepts OTLP/HTTP exports on /v1/traces (protobuf, as
// the collector's trace service defines them, or their JSON form) and writes
// each received span as one JSON line to the -out file.
//
// With -upstream URL it also forwards every other request to URL (a reverse
// proxy in front of the fixture upstream) and writes each one's path and
// W3C trace headers as a JSON line to -requests: what Sparta passed on.
//
// It prints nothing on stdout but writes its bound address to -addr-file once
// it listens, and exits when its stdin closes (the test process ended).
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// span is what the tests read: ids as hex, attributes as strings.
type span struct {
	TraceID      string            `json:"trace_id"`
	SpanID       string            `json:"span_id"`
	ParentSpanID string            `json:"parent_span_id"`
	Name         string            `json:"name"`
	Kind         string            `json:"kind"`
	Service      string            `json:"service"`
	Scope        string            `json:"scope"`
	Attributes   map[string]string `json:"attributes"`
	StartNanos   uint64            `json:"start_unix_nano"`
	EndNanos     uint64            `json:"end_unix_nano"`
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(x.DoubleValue)
		default:
			m[kv.GetKey()] = protojson.Format(v)
		}
	}
	return m
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	addrFile := flag.String("addr-file", "", "file to write the bound address to")
	out := flag.String("out", "", "file to append received spans to, one JSON object a line")
	upstream := flag.String("upstream", "", "forward other requests to this URL")
	requests := flag.String("requests", "", "file to append forwarded requests' trace headers to")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex

	http.HandleFunc("/v1/traces", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		raw, err := io.ReadAll(io.LimitReader(body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := &coltrace.ExportTraceServiceRequest{}
		isJSON := strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
		if isJSON {
			err = protojson.Unmarshal(raw, req)
		} else {
			err = proto.Unmarshal(raw, req)
		}
		if err != nil {
			http.Error(w, "bad export request: "+err.Error(), http.StatusBadRequest)
			return
		}
		var lines bytes.Buffer
		for _, rs := range req.GetResourceSpans() {
			res := attrs(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					line, _ := json.Marshal(span{
						TraceID:      hex.EncodeToString(s.GetTraceId()),
						SpanID:       hex.EncodeToString(s.GetSpanId()),
						ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
						Name:         s.GetName(),
						Kind:         s.GetKind().String(),
						Service:      res["service.name"],
						Scope:        ss.GetScope().GetName(),
						Attributes:   attrs(s.GetAttributes()),
						StartNanos:   s.GetStartTimeUnixNano(),
						EndNanos:     s.GetEndTimeUnixNano(),
					})
					lines.Write(line)
					lines.WriteByte('\n')
				}
			}
		}
		mu.Lock()
		_, err = f.Write(lines.Bytes())
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		if isJSON {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("{}"))
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
	})

	if *upstream != "" {
		target, err := url.Parse(*upstream)
		if err != nil {
			log.Fatal(err)
		}
		rf, err := os.OpenFile(*requests, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		proxy := httputil.NewSingleHostReverseProxy(target)
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			line, _ := json.Marshal(map[string]string{
				"path":        r.URL.Path,
				"traceparent": r.Header.Get("traceparent"),
				"tracestate":  r.Header.Get("tracestate"),
			})
			mu.Lock()
			rf.Write(append(line, '\n'))
			mu.Unlock()
			r.Host = target.Host
			proxy.ServeHTTP(w, r)
		})
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatal(err)
		}
	}
	// Exit with the test process: it holds our stdin open.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	log.Fatal(http.Serve(ln, nil))
}
