-- wrk script: the mixed workload. Every 20th request asks for /slow (the
-- application sleeps 100 ms, as one waiting on its database would), the
-- others for the hello world; done() prints p99.9, which wrk does not.
local n = 0

request = function()
   n = n + 1
   if n % 20 == 0 then
      return wrk.format(nil, "/slow")
   end
   return wrk.format(nil, "/")
end

done = function(summary, latency, requests)
   io.write(string.format("p99.9 %d\n", latency:percentile(99.9)))
end
