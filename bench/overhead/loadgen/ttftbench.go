// ttftbench: closed-loop streaming load generator, stdlib only (bench/overhead/ttft.py builds and runs it).
//
// -streams goroutines each send a streaming POST, read it to the end, and send the next one, so
// that -streams streams are in flight at all times. Their first sends are spread over -stagger (about
// one stream's length): streams of equal length started together would stay in step and arrive in
// bursts of -streams requests at once, which measures queueing behind the burst, not the gateway. Per stream it records the time from the send
// to the first SSE event ("data: " line) of the body (ttft_ms) and to the end of the body
// (total_ms). A stream counts as failed when the status is not 200, the body has no "data: [DONE]"
// or the connection fails; its goroutine then waits -pause before the next send, as a client that
// backs off would. -warmup is run the same way and not recorded.
//
// Output: one JSON object on stdout.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type hdrs []string

func (h *hdrs) String() string     { return strings.Join(*h, ",") }
func (h *hdrs) Set(v string) error { *h = append(*h, v); return nil }

func pct(s []float64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(p/100*float64(len(s)-1) + 0.5)
	return s[i]
}

func summary(s []float64) map[string]float64 {
	sort.Float64s(s)
	out := map[string]float64{"p50": pct(s, 50), "p90": pct(s, 90), "p99": pct(s, 99), "max": 0}
	if len(s) > 0 {
		out["max"] = s[len(s)-1]
	}
	return out
}

func main() {
	url := flag.String("url", "", "target URL")
	bodyFile := flag.String("body", "", "request body file")
	streams := flag.Int("streams", 200, "streams in flight at all times")
	dur := flag.Duration("duration", 10*time.Second, "measured duration")
	warm := flag.Duration("warmup", 2*time.Second, "warm-up (not recorded)")
	timeout := flag.Duration("timeout", 60*time.Second, "per-stream timeout")
	pause := flag.Duration("pause", time.Second, "after a failed stream (a 503 while the gateway sheds load), wait this long")
	stagger := flag.Duration("stagger", time.Second, "spread the streams' first sends over this long (about one stream's length)")
	var headers hdrs
	flag.Var(&headers, "H", "header 'Name: value' (repeatable)")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if *url == "" || err != nil {
		fmt.Fprintln(os.Stderr, "-url and a readable -body are required")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConns: *streams * 2, MaxIdleConnsPerHost: *streams * 2, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: *timeout}
	done := []byte("data: [DONE]")

	var mu sync.Mutex
	var ttft, total []float64
	var errs, count int64
	var recording, stop int32
	firstErr := ""

	one := func() bool {
		req, _ := http.NewRequest("POST", *url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for _, h := range headers {
			if k, v, ok := strings.Cut(h, ":"); ok {
				req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		fail := func(msg string) {
			if atomic.LoadInt32(&recording) == 1 {
				atomic.AddInt64(&errs, 1)
				mu.Lock()
				if firstErr == "" {
					firstErr = msg
				}
				mu.Unlock()
			}
		}
		if err != nil {
			fail(err.Error())
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			io.Copy(io.Discard, resp.Body)
			fail(fmt.Sprintf("status %d", resp.StatusCode))
			return false
		}
		r := bufio.NewReaderSize(resp.Body, 16384)
		var first time.Duration = -1
		sawDone := false
		for {
			line, err := r.ReadSlice('\n')
			if first < 0 && bytes.HasPrefix(line, []byte("data: ")) {
				first = time.Since(t0)
			}
			if bytes.HasPrefix(line, done) {
				sawDone = true
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				break
			}
		}
		end := time.Since(t0)
		if first < 0 || !sawDone {
			fail("stream without events or without data: [DONE]")
			return false
		}
		if atomic.LoadInt32(&recording) == 1 {
			mu.Lock()
			ttft = append(ttft, float64(first.Microseconds())/1000)
			total = append(total, float64(end.Microseconds())/1000)
			mu.Unlock()
			atomic.AddInt64(&count, 1)
		}
		return true
	}

	var wg sync.WaitGroup
	for i := 0; i < *streams; i++ {
		wg.Add(1)
		delay := time.Duration(int64(*stagger) * int64(i) / int64(*streams))
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			for atomic.LoadInt32(&stop) == 0 {
				if !one() {
					time.Sleep(*pause) // a client backs off; a tight retry loop would only measure 503s
				}
			}
		}()
	}
	time.Sleep(*warm)
	atomic.StoreInt32(&recording, 1)
	start := time.Now()
	time.Sleep(*dur)
	atomic.StoreInt32(&recording, 0)
	elapsed := time.Since(start)
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	out := map[string]any{
		"streams": *streams, "duration_s": elapsed.Seconds(), "completed": count, "errors": errs,
		"streams_per_s": float64(count) / elapsed.Seconds(), "ttft_ms": summary(ttft), "total_ms": summary(total),
		"first_error": firstErr,
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
