-- Reserves units of one sale for one or more buyers: each reservation is
-- one atomic step in which rate limits, idempotency claim, sale window,
-- per-buyer limit and stock are all checked before anything is
-- decremented. Several reservations of the sale go through one call, in
-- order, as if each had been a call of its own: a batch saves the round
-- trips, not a check.
--
-- KEYS, seven per reservation, all hash-tagged by the sale (so the script is
-- Redis Cluster-safe); for reservation i (from 0) at 7*i +
--   1 sale hash (stock, total, starts, ends, limit, fence)
--   2 buyers hash (buyer -> units held)
--   3 reservations hash (buyer NUL key -> "qty:reserved_ms[:attempt][:c]")
--   4 idempotency claim (string: request fingerprint)
--   5 buyer rate-limit cell    6 client-IP rate-limit cell
--   7 settle queue (list of reservation fields, oldest first): the
--     reconciler reads its head instead of every reservation of the sale
-- ARGV: 1 buyer rate/s  2 buyer burst  3 IP rate/s  4 IP burst  5 claim TTL s,
--   then five per reservation, at 5 + 5*i +
--   1 qty  2 fingerprint  3 buyer  4 reservation field
--   5 attempt: names the request that reserves ('' for none), so that the
--     request can abandon its own reservation when it never saw the reply
--     (release.lua), and never a retry's under the same key
-- Returns {code, a, b} per reservation, concatenated:
--   0 reserved: a = reserved at (ms), b = stock left
--   1 sold out: a = stock left       2 limit reached     3 not active
--   4 no such sale (not warmed)      5 rate limited: a = retry after ms, b = 1 buyer / 2 IP
--   6 key claimed with this fingerprint   7 key claimed with another fingerprint
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local u_rate, u_burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local i_rate, i_burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local claim_ttl = tonumber(ARGV[5])

-- GCRA: the theoretical arrival time must not run further ahead of now
-- than the burst allows. Both cells are checked before either is charged.
local function gcra(key, rate, burst)
  local emission = 1000000 / rate
  local tat = tonumber(redis.call('GET', key)) or now_us
  if tat < now_us then tat = now_us end
  local new_tat = tat + emission
  local allow_at = new_tat - emission * burst
  if now_us < allow_at then return nil, allow_at - now_us end
  return new_tat, 0
end

-- The sale's fields, read once per call: the reservations of a call are
-- for one sale, and nothing else runs while the script does, so only this
-- script's own decrements change them meanwhile.
local sale_key, sale_fields
local function sale_of(key)
  if key ~= sale_key then
    sale_key, sale_fields = key, redis.call('HMGET', key, 'stock', 'starts', 'ends', 'limit')
  end
  return sale_fields
end

local function reserve(k, qty, fingerprint, buyer, fld, attempt)
  local u_tat, u_wait = gcra(KEYS[k + 5], u_rate, u_burst)
  if not u_tat then return 5, math.ceil(u_wait / 1000), 1 end
  local i_tat, i_wait = gcra(KEYS[k + 6], i_rate, i_burst)
  if not i_tat then return 5, math.ceil(i_wait / 1000), 2 end
  redis.call('SET', KEYS[k + 5], string.format('%d', u_tat), 'PX', math.ceil((u_tat - now_us) / 1000) + 1)
  redis.call('SET', KEYS[k + 6], string.format('%d', i_tat), 'PX', math.ceil((i_tat - now_us) / 1000) + 1)

  local claim = redis.call('GET', KEYS[k + 4])
  if claim then
    if claim == fingerprint then return 6, 0, 0 end
    return 7, 0, 0
  end
  if redis.call('HEXISTS', KEYS[k + 3], fld) == 1 then return 6, 0, 0 end

  local sale = sale_of(KEYS[k + 1])
  if not sale[1] then return 4, 0, 0 end
  local stock = tonumber(sale[1])
  if now_ms < tonumber(sale[2]) or now_ms >= tonumber(sale[3]) then return 3, stock, 0 end
  local held = tonumber(redis.call('HGET', KEYS[k + 2], buyer) or '0')
  if held + qty > tonumber(sale[4]) then return 2, stock, 0 end
  if stock < qty then return 1, stock, 0 end

  stock = redis.call('HINCRBY', KEYS[k + 1], 'stock', -qty)
  sale[1] = stock
  redis.call('HINCRBY', KEYS[k + 2], buyer, qty)
  local v = qty .. ':' .. now_ms
  if attempt ~= '' then v = v .. ':' .. attempt end
  redis.call('HSET', KEYS[k + 3], fld, v)
  redis.call('RPUSH', KEYS[k + 7], fld)
  redis.call('SET', KEYS[k + 4], fingerprint, 'EX', claim_ttl)
  return 0, now_ms, stock
end

local out = {}
for i = 0, #KEYS / 7 - 1 do
  local a = 5 + 5 * i
  local code, x, y = reserve(7 * i, tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
  out[3 * i + 1] = code
  out[3 * i + 2] = x
  out[3 * i + 3] = y
end
return out
