-- Marks reservations whose order is durable, so the reconciler stops
-- looking at them; they stay counted until the order's stock is released.
-- KEYS: 1 sale hash  2 reservations hash
-- ARGV: 1 fencing token, then reservation fields
-- Returns {confirmed, stale fence (1/0)}
local token = tonumber(ARGV[1])
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if token < fence then return {0, 1} end
redis.call('HSET', KEYS[1], 'fence', token)
local n = 0
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v and not string.find(v, ':c$') then
    redis.call('HSET', KEYS[2], ARGV[i], v .. ':c')
    n = n + 1
  end
end
return {n, 0}
