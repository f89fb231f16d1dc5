// From shared/anchors/gateway/loadgen/ratebench.go (gateway-overhead anchors), plus the latency of
// 200 responses alone (ok_lat_ms): the overload benchmark (bench/overload/run.py) reports admitted
// requests' latency apart from the fast 503s; and the connections it dialed while recording
// (conns_opened, dial_ms, slow_dials: connects of 0.9 s or more, i.e. a retransmitted SYN).
// One generator for both benchmarks.
// ratebench: open-loop (fixed arrival rate) HTTP load generator, stdlib only.
//
// Requests are scheduled at t0 + i/rate regardless of how earlier requests fare
// (no coordinated omission: the dispatcher never waits for responses).
// lat_ms: from the actual send to the end of the response body (primary metric).
// sched_lat_ms: from the *scheduled* send time (includes the generator's own
// timer/scheduling lateness, reported separately as send_lateness_ms).
// Requests that cannot start because -maxinflight is reached are counted as
// "dropped" (the target is saturated at that rate).
//
// Output: one JSON object on stdout.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
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

func main() {
	url := flag.String("url", "", "target URL")
	bodyFile := flag.String("body", "", "request body file (POST)")
	rate := flag.Float64("rate", 100, "requests per second")
	dur := flag.Duration("duration", 20*time.Second, "measured duration")
	warm := flag.Duration("warmup", 3*time.Second, "warm-up at the same rate (not recorded)")
	maxInflight := flag.Int("maxinflight", 1024, "max concurrent requests (= max connections)")
	timeout := flag.Duration("timeout", 30*time.Second, "per-request timeout")
	expect := flag.String("expect", "", "substring the response body must contain")
	newConn := flag.Bool("newconn", false, "a new connection for every request (no keep-alive)")
	var headers hdrs
	flag.Var(&headers, "H", "header 'Name: value' (repeatable)")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "-url required")
		os.Exit(2)
	}
	var body []byte
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			panic(err)
		}
		body = b
	}
	// Connections dialed while recording, and how long each connect took (a connect of 1 s or
	// more is a SYN retransmitted after the server's listen queue dropped it).
	var recording int32
	var dialMu sync.Mutex
	dialLat := []float64{}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		t := time.Now()
		c, err := dialer.DialContext(ctx, network, addr)
		if atomic.LoadInt32(&recording) == 1 {
			dialMu.Lock()
			dialLat = append(dialLat, float64(time.Since(t).Microseconds())/1000)
			dialMu.Unlock()
		}
		return c, err
	}
	tr := &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        *maxInflight,
		MaxIdleConnsPerHost: *maxInflight,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		DisableKeepAlives:   *newConn,
	}
	client := &http.Client{Transport: tr, Timeout: *timeout}
	expectB := []byte(*expect)

	var mu sync.Mutex
	lat := make([]float64, 0, int(*rate*dur.Seconds())+16)
	okLat := make([]float64, 0, int(*rate*dur.Seconds())+16)
	svc := make([]float64, 0, int(*rate*dur.Seconds())+16)
	late := make([]float64, 0, int(*rate*dur.Seconds())+16)
	codes := map[string]int{}
	firstErrs := []string{}
	var inflight, dropped, errs, badBody int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, *maxInflight)

	run := func(phaseDur time.Duration, record bool) (time.Duration, int64) {
		interval := time.Duration(float64(time.Second) / *rate)
		start := time.Now()
		var sent int64
		for i := int64(0); ; i++ {
			sched := start.Add(time.Duration(i) * interval)
			if sched.Sub(start) >= phaseDur {
				break
			}
			if d := time.Until(sched); d > 0 {
				time.Sleep(d)
			}
			select {
			case sem <- struct{}{}:
			default:
				if record {
					atomic.AddInt64(&dropped, 1)
				}
				continue
			}
			sent++
			wg.Add(1)
			atomic.AddInt64(&inflight, 1)
			go func(sched time.Time) {
				defer func() { <-sem; atomic.AddInt64(&inflight, -1); wg.Done() }()
				var rdr io.Reader
				method := "GET"
				if body != nil {
					rdr = bytes.NewReader(body)
					method = "POST"
				}
				req, _ := http.NewRequest(method, *url, rdr)
				req.Header.Set("Content-Type", "application/json")
				for _, h := range headers {
					k, v, _ := strings.Cut(h, ":")
					req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
				}
				t1 := time.Now()
				resp, err := client.Do(req)
				var rb []byte
				if err == nil {
					rb, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				t2 := time.Now()
				if !record {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs++
					codes["err"]++
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, err.Error())
					}
					return
				}
				codes[fmt.Sprint(resp.StatusCode)]++
				if resp.StatusCode == 200 {
					okLat = append(okLat, float64(t2.Sub(t1).Microseconds())/1000)
				}
				if len(expectB) > 0 && !bytes.Contains(rb, expectB) {
					badBody++
				}
				lat = append(lat, float64(t2.Sub(t1).Microseconds())/1000)
				svc = append(svc, float64(t2.Sub(sched).Microseconds())/1000)
				late = append(late, float64(t1.Sub(sched).Microseconds())/1000)
			}(sched)
		}
		return time.Since(start), sent
	}
	var warmSent int64
	if *warm > 0 {
		_, warmSent = run(*warm, false)
		wg.Wait()
	}
	atomic.StoreInt32(&recording, 1)
	t0 := time.Now()
	_, sent := run(*dur, true)
	wg.Wait()
	atomic.StoreInt32(&recording, 0)
	dialMu.Lock()
	sort.Float64s(dialLat)
	slowDials := 0
	for _, v := range dialLat {
		if v >= 900 {
			slowDials++
		}
	}
	dialMu.Unlock()
	elapsed := time.Since(t0) // until the last response (includes draining a backlog)
	sort.Float64s(lat)
	sort.Float64s(okLat)
	sort.Float64s(svc)
	sort.Float64s(late)
	mean := 0.0
	for _, v := range lat {
		mean += v
	}
	if len(lat) > 0 {
		mean /= float64(len(lat))
	}
	ok := codes["200"]
	out := map[string]interface{}{
		"tool": "ratebench", "url": *url, "target_rps": *rate, "duration_s": dur.Seconds(),
		"sent": sent, "dropped_inflight_cap": dropped, "errors": errs, "codes": codes, "bad_body": badBody,
		"achieved_ok_rps":  float64(ok) / elapsed.Seconds(),
		"elapsed_s":        elapsed.Seconds(),
		"first_errors":     firstErrs,
		"recorded_from":    float64(t0.UnixNano()) / 1e9,
		"warmup_sent":      warmSent,
		"conns_opened":     len(dialLat),
		"slow_dials":       slowDials,
		"dial_ms":          map[string]float64{"p50": pct(dialLat, 50), "p99": pct(dialLat, 99), "max": pct(dialLat, 100)},
		"ok_lat_ms":        map[string]float64{"p50": pct(okLat, 50), "p99": pct(okLat, 99), "max": pct(okLat, 100)},
		"lat_ms":           map[string]float64{"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "p999": pct(lat, 99.9), "max": pct(lat, 100), "mean": mean},
		"sched_lat_ms":     map[string]float64{"p50": pct(svc, 50), "p90": pct(svc, 90), "p99": pct(svc, 99)},
		"send_lateness_ms": map[string]float64{"p50": pct(late, 50), "p90": pct(late, 90), "p99": pct(late, 99)},
	}
	enc := json.NewEncoder(os.Stdout)
	enc.Encode(out)
}
