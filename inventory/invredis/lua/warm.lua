-- Aligns a sale's total in Redis with PostgreSQL's: stock grows by what
-- PostgreSQL holds beyond what Redis was given, so a restock committed in
-- PostgreSQL but lost before Redis saw it is applied once. It never
-- creates a sale: a missing one is rebuilt from the orders (rebuild.lua),
-- since reloading the total would sell again every unit already sold.
-- KEYS: 1 sale hash
-- ARGV: 1 total stock (PostgreSQL)  2 starts ms  3 ends ms  4 limit  5 fencing token
--       6 reopen channel  7 sale id
-- Returns {stock, added, stale fence (1/0), missing (1/0)}
local token = tonumber(ARGV[5])
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if token < fence then return {0, 0, 1, 0} end
-- The stock field, not the key: a fenced write (confirm, release) can
-- leave a hash holding only its fence.
if redis.call('HEXISTS', KEYS[1], 'stock') == 0 then return {0, 0, 0, 1} end
local total = tonumber(ARGV[1])
local had = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local added = 0
if total > had then
  added = total - had
  redis.call('HINCRBY', KEYS[1], 'stock', added)
end
redis.call('HSET', KEYS[1], 'total', math.max(total, had), 'starts', ARGV[2], 'ends', ARGV[3],
  'limit', ARGV[4], 'fence', token)
if added > 0 then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
return {tonumber(redis.call('HGET', KEYS[1], 'stock')), added, 0, 0}
