// The Go peer of the select group of benches/sync.rs: one goroutine on
// GOMAXPROCS=1 sends into channel a, then selects over a and b (buffered,
// capacity 1024; b stays empty). Prints the median and the minimum of 5
// runs of N selects, per select.
//
//	go run ./select
package main

import (
	"fmt"
	"runtime"
	"sort"
	"time"
)

const (
	n    = 10_000_000
	runs = 5
)

// sink keeps the received values alive.
var sink uint64

// run does n sends and selects and returns the nanoseconds per select.
func run() float64 {
	a := make(chan uint64, 1024)
	b := make(chan uint64, 1024)
	start := time.Now()
	for i := uint64(0); i < n; i++ {
		a <- i
		select {
		case m := <-a:
			sink += m
		case m := <-b:
			sink += m
		}
	}
	return float64(time.Since(start).Nanoseconds()) / n
}

func main() {
	runtime.GOMAXPROCS(1)
	ds := make([]float64, runs)
	for i := range ds {
		ds[i] = run()
	}
	sort.Float64s(ds)
	fmt.Printf("go select: median %.1f ns per select (min %.1f ns)\n", ds[runs/2], ds[0])
}
