// refreg serves go-containerregistry's registry (pkg/registry) with the OCI 1.1 referrers
// API switched on, for regshift's tests and benchmark: the registry with a referrers API
// that the Go module proxy can build here. It listens on loopback only and writes one
// access-log line per request to stdout in the Combined Log Format CNCF distribution uses,
// so the test harness counts its requests the same way.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
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

func accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &recorder{ResponseWriter: w}
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
	server := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: accessLog(registry.New(opts...))}
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
