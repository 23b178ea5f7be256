// The Go peer of examples/http_hello.rs: net/http answering
// "Hello, World!" to every request, keep-alive (the default).
//
//	go run ./http [ADDR]
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	addr := "127.0.0.1:8081"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("Hello, World!"))
	})
	log.Printf("http (Go): listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
