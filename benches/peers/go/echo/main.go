// The Go peer of examples/echo_server.rs: a goroutine per connection,
// echoing every byte back. GOMAXPROCS sets the threads (benches/peers/run
// sets 2, as the growstack server has 2 workers).
//
//	go run ./echo [ADDR]
package main

import (
	"log"
	"net"
	"os"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	addr := "127.0.0.1:7001"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("echo (Go): listening on %s", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			log.Print(err)
			continue
		}
		go serve(c)
	}
}
