-- Reserves units of one sale for one buyer in a single atomic step: rate
-- limits, idempotency claim, sale window, per-buyer limit and stock are all
-- checked before anything is decremented.
--
-- KEYS (all hash-tagged by sale, so the script is Redis Cluster-safe):
--   1 sale hash (stock, total, starts, ends, limit, fence)
--   2 buyers hash (buyer -> units held)
--   3 reservations hash (buyer NUL key -> "qty:reserved_ms[:c]")
--   4 idempotency claim (string: request fingerprint)
--   5 buyer rate-limit cell    6 client-IP rate-limit cell
-- ARGV: 1 qty  2 fingerprint  3 buyer  4 reservation field
--       5 buyer rate/s  6 buyer burst  7 IP rate/s  8 IP burst  9 claim TTL s
-- Returns {code, a, b}:
--   0 reserved: a = reserved at (ms), b = stock left
--   1 sold out: a = stock left       2 limit reached     3 not active
--   4 no such sale (not warmed)      5 rate limited: a = retry after ms, b = 1 buyer / 2 IP
--   6 key claimed with this fingerprint   7 key claimed with another fingerprint
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)

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
local u_tat, u_wait = gcra(KEYS[5], tonumber(ARGV[5]), tonumber(ARGV[6]))
if not u_tat then return {5, math.ceil(u_wait / 1000), 1} end
local i_tat, i_wait = gcra(KEYS[6], tonumber(ARGV[7]), tonumber(ARGV[8]))
if not i_tat then return {5, math.ceil(i_wait / 1000), 2} end
redis.call('SET', KEYS[5], string.format('%d', u_tat), 'PX', math.ceil((u_tat - now_us) / 1000) + 1)
redis.call('SET', KEYS[6], string.format('%d', i_tat), 'PX', math.ceil((i_tat - now_us) / 1000) + 1)

local claim = redis.call('GET', KEYS[4])
if claim then
  if claim == ARGV[2] then return {6, 0, 0} end
  return {7, 0, 0}
end
if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then return {6, 0, 0} end

local sale = redis.call('HMGET', KEYS[1], 'stock', 'starts', 'ends', 'limit')
if not sale[1] then return {4, 0, 0} end
local stock = tonumber(sale[1])
if now_ms < tonumber(sale[2]) or now_ms >= tonumber(sale[3]) then return {3, stock, 0} end
local qty = tonumber(ARGV[1])
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if held + qty > tonumber(sale[4]) then return {2, stock, 0} end
if stock < qty then return {1, stock, 0} end

stock = redis.call('HINCRBY', KEYS[1], 'stock', -qty)
redis.call('HINCRBY', KEYS[2], ARGV[3], qty)
redis.call('HSET', KEYS[3], ARGV[4], qty .. ':' .. now_ms)
redis.call('SET', KEYS[4], ARGV[2], 'EX', tonumber(ARGV[9]))
return {0, now_ms, stock}
