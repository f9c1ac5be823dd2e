-- Returns the units of one reservation to stock, at most once: the
-- reservation entry is the token, and a second call finds it gone. A
-- discard (ARGV 7 = 0) drops the reservation without giving its units back:
-- PostgreSQL refused them, so they did not exist (Redis had lost writes).
-- KEYS: 1 sale hash  2 buyers hash  3 reservations hash  4 idempotency claim
--       5 closed set: the reservation fields of orders that were closed
--         (cancelled, expired) and keep their claim, so the sold-out memory
--         still knows these keys made an order and replays it
-- ARGV: 1 reservation field  2 buyer  3 forget claim (1/0)  4 reopen channel  5 sale id
--       6 fencing token (0 when the caller holds no lock)  7 give the units back (1/0)
--       8 attempt ('' for any): release only the reservation that attempt
--         made, unconfirmed; another attempt's under the same key (a retry
--         that reserved after this one failed) is left alone
-- Returns {units released (0 if already released), stock, stale fence (1/0)}
local token = tonumber(ARGV[6])
if token > 0 then
  local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
  if token < fence then return {0, 0, 1} end
  redis.call('HSET', KEYS[1], 'fence', token)
end
local attempt = ARGV[8] or ''
local v = redis.call('HGET', KEYS[3], ARGV[1])
if not v or (attempt ~= '' and string.match(v, '^%d+:%d+:([^:]+)$') ~= attempt) then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'stock') or '0'), 0}
end
local qty = tonumber(string.match(v, '^(%d+)'))
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('HINCRBY', KEYS[2], ARGV[2], -qty) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[4])
else
  redis.call('SADD', KEYS[5], ARGV[1])
end
if ARGV[7] == '0' then return {qty, tonumber(redis.call('HGET', KEYS[1], 'stock') or '0'), 0} end
local stock = redis.call('HINCRBY', KEYS[1], 'stock', qty)
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {qty, stock, 0}
