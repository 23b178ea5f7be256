// The Go peer of examples/million_idle.rs: N goroutines (default 1,000,000)
// on GOMAXPROCS=2, each sends on a ready channel and then parks receiving on
// a shared go channel. Once all are parked, prints RSS and page-table
// (VmRSS, VmPTE from /proc/self/status) growth per goroutine, against a
// baseline taken after a runtime.GC() before spawning; then closes the go
// channel and times the release and join.
//
//	go run ./parked [N]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// status returns the VmRSS and VmPTE of this process, in bytes.
func status() (rss, pte int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		panic(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "VmRSS:" && f[0] != "VmPTE:") {
			continue
		}
		kib, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			panic(err)
		}
		if f[0] == "VmRSS:" {
			rss = kib * 1024
		} else {
			pte = kib * 1024
		}
	}
	return
}

func main() {
	n := 1_000_000
	if len(os.Args) > 1 {
		var err error
		if n, err = strconv.Atoi(os.Args[1]); err != nil {
			panic(err)
		}
	}
	runtime.GOMAXPROCS(2)
	runtime.GC()
	baseRSS, basePTE := status()

	ready := make(chan struct{})
	goCh := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer wg.Done()
			ready <- struct{}{}
			<-goCh // parks until goCh is closed
		}()
	}
	for i := 0; i < n; i++ {
		<-ready
	}
	time.Sleep(300 * time.Millisecond)
	rss, pte := status()
	rssPer, ptePer := (rss-baseRSS)/int64(n), (pte-basePTE)/int64(n)
	fmt.Printf("parked N=%d rss_per_task=%d pte_per_task=%d total_per_task=%d\n",
		n, rssPer, ptePer, rssPer+ptePer)

	start := time.Now()
	close(goCh)
	wg.Wait()
	fmt.Printf("released in %v\n", time.Since(start))
}
