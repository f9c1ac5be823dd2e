-- Rebuilds one sale's live state from PostgreSQL's truth after Redis lost
-- writes (a restart that lost its last second of AOF, a failover to a
-- lagging replica, a restored snapshot, a flush). It never trusts the
-- original total: stock is the total less the units of every reservation
-- left once the live orders are in, so it can run any number of times.
--   1 every live order (pending payment or paid) without a reservation gets
--     one, confirmed, and its idempotency claim when that was lost;
--   2 a confirmed reservation whose order is no longer live is dropped: its
--     release was lost. Unconfirmed ones are requests still in flight (or
--     crashed), settled by the reconciler after the grace; so are those the
--     buy path marked committed (':b', made without the lease: the order
--     may have committed after the live orders were read);
--   3 stock and the buyers hash are recomputed from the reservations.
-- Reservations running meanwhile are safe: this script is atomic, and an
-- order that committed after PostgreSQL was read has its reservation here.
-- KEYS: 1 sale hash  2 buyers hash  3 reservations hash, then the
--       idempotency claim of each live order, in ARGV's order
-- ARGV: 1 fencing token  2 total stock (PostgreSQL)  3 starts ms  4 ends ms
--       5 limit  6 claim TTL s  7 reopen channel  8 sale id, then three per
--       live order, at 8 + 3*i +  1 reservation field  2 qty  3 fingerprint
-- Returns {stock, reservations added, reservations dropped, stale fence (1/0)}
local token = tonumber(ARGV[1])
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if token < fence then return {0, 0, 0, 1} end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local before = tonumber(redis.call('HGET', KEYS[1], 'stock'))
local ttl = tonumber(ARGV[6])

local live, added = {}, 0
for i = 0, (#ARGV - 8) / 3 - 1 do
  local a = 8 + 3 * i
  local fld = ARGV[a + 1]
  live[fld] = true
  if redis.call('HSETNX', KEYS[3], fld, ARGV[a + 2] .. ':' .. now_ms .. ':c') == 1 then
    added = added + 1
  end
  redis.call('SET', KEYS[4 + i], ARGV[a + 3], 'EX', ttl, 'NX')
end

local held, by, dropped = 0, {}, 0
local all = redis.call('HGETALL', KEYS[3])
for j = 1, #all, 2 do
  local fld, v = all[j], all[j + 1]
  if string.sub(v, -2) == ':c' and not live[fld] then
    redis.call('HDEL', KEYS[3], fld)
    dropped = dropped + 1
  else
    local qty = tonumber(string.match(v, '^(%d+)'))
    local buyer = string.sub(fld, 1, string.find(fld, '\0', 1, true) - 1)
    held = held + qty
    by[buyer] = (by[buyer] or 0) + qty
  end
end
redis.call('DEL', KEYS[2])
for buyer, qty in pairs(by) do redis.call('HSET', KEYS[2], buyer, qty) end

-- Negative only when PostgreSQL holds more than the stock (an oversell
-- from before): then nothing sells until enough orders close.
local stock = tonumber(ARGV[2]) - held
redis.call('HSET', KEYS[1], 'stock', stock, 'total', ARGV[2], 'starts', ARGV[3], 'ends', ARGV[4],
  'limit', ARGV[5], 'fence', token)
if before == nil or stock > before then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return {stock, added, dropped, 0}
