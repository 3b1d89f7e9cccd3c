// refreg serves go-containerregistry's registry (pkg/registry) with the OCI 1.1 referrers
// API switched on, for regshift's tests and benchmark: the registry with a referrers API
// that the Go module proxy can build here. It listens on loopback only and writes one
// access-log line per request to stdout in the Combined Log Format CNCF distribution uses,
// so the test harness counts its requests the same way.
//
// With -oci-subject it also answers a manifest PUT whose body has a "subject" with the
// OCI-Subject header, which the OCI 1.1 spec requires of a registry with the referrers API
// and pkg/registry v0.22.1 leaves out (olareg, zot and Harbor send it); without the flag a
// client sees what pkg/registry itself does and keeps the fallback tag as well.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

type recorder struct {
	http.ResponseWriter
	status  int
	bytes   int
	subject string // OCI-Subject to add to a 201 answer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	if r.subject != "" && status == http.StatusCreated {
		r.Header().Set("OCI-Subject", r.subject)
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// manifestSubject reads the body of a manifest PUT and puts it back; it returns the digest
// of the manifest's subject, if it has one.
func manifestSubject(req *http.Request) string {
	if req.Method != http.MethodPut || !strings.Contains(req.URL.Path, "/manifests/") {
		return ""
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return ""
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	var doc struct {
		Subject *struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	if json.Unmarshal(body, &doc) != nil || doc.Subject == nil {
		return ""
	}
	return doc.Subject.Digest
}

func accessLog(next http.Handler, ociSubject bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &recorder{ResponseWriter: w}
		if ociSubject {
			rec.subject = manifestSubject(req)
		}
		next.ServeHTTP(rec, req)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		host, _, err := net.SplitHostPort(req.RemoteAddr)
		if err != nil {
			host = req.RemoteAddr
		}
		fmt.Fprintf(os.Stdout, "%s - - [%s] %q %d %d %q %q\n",
			host, time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700"),
			req.Method+" "+req.RequestURI+" "+req.Proto,
			rec.status, rec.bytes, req.Referer(), req.UserAgent())
	})
}

func main() {
	address := flag.String("address", "127.0.0.1:0", "loopback address to listen on")
	disk := flag.String("disk", "", "directory for blobs (default: memory)")
	ociSubject := flag.Bool("oci-subject", false, "answer a manifest PUT with a subject with OCI-Subject")
	flag.Parse()

	listener, err := net.Listen("tcp", *address)
	if err != nil {
		log.Fatalln(err)
	}
	if addr, ok := listener.Addr().(*net.TCPAddr); !ok || !addr.IP.IsLoopback() {
		log.Fatalf("refusing to listen on %s: loopback only", listener.Addr())
	}
	opts := []registry.Option{registry.WithReferrersSupport(true), registry.Logger(log.New(os.Stderr, "", log.LstdFlags))}
	if *disk != "" {
		opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(*disk)))
	}
	server := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: accessLog(registry.New(opts...), *ociSubject)}
	log.Printf("serving on %s", listener.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		_ = server.Close()
	}()
	if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
		log.Fatalln(err)
	}
}
