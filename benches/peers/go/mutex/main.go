// The Go peer of the mutex_contended group of benches/sync.rs: 8 goroutines
// on GOMAXPROCS=2 increment one counter under a sync.Mutex, 1,000,000
// increments in all. Prints the median and the minimum of 20 runs (after 2
// warm-up runs), spawns and joins included.
//
//	go run ./mutex
package main

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"
)

const (
	goroutines = 8
	increments = 1_000_000
	warmups    = 2
	runs       = 20
)

// run does one whole run and returns its duration.
func run() time.Duration {
	var mu sync.Mutex
	var counter uint64
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(goroutines)
	for g := 0; g < goroutines; g++ {
		go func() {
			defer wg.Done()
			for i := 0; i < increments/goroutines; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if counter != increments {
		panic(fmt.Sprintf("counter = %d, want %d", counter, increments))
	}
	return elapsed
}

func main() {
	runtime.GOMAXPROCS(2)
	for i := 0; i < warmups; i++ {
		run()
	}
	ds := make([]time.Duration, runs)
	for i := range ds {
		ds[i] = run()
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	median := ds[runs/2]
	fmt.Printf("go mutex_contended: median %d ns per run, %.1f M increments/s (min %d ns)\n",
		median.Nanoseconds(), increments/median.Seconds()/1e6, ds[0].Nanoseconds())
}
