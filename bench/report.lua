-- wrk script for `make bench`: no request or response hooks (they would slow wrk down),
-- only done(), which prints one machine-readable line that bench.py parses.
-- Times are in microseconds. errors.status counts responses with a status >= 400;
-- bench.py checks every contender for an exact 200 with the 1 KiB body before measuring.
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d " ..
      "err_write=%d err_status=%d err_timeout=%d p50_us=%d p90_us=%d p99_us=%d " ..
      "max_us=%d mean_us=%.1f\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
