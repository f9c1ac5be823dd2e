-- The relays alive: a sorted set of relay ids scored by when each one's
-- heartbeat expires, on the server's clock so that hosts' clocks do not
-- matter. Renews (or, with ARGV[3] = "leave", removes) ARGV[1] for
-- ARGV[2] ms, forgets the expired, and returns the ids alive.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == 'leave' then
    redis.call('ZREM', KEYS[1], ARGV[1])
else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
