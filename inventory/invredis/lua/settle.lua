-- Settles reservations: marks those whose order is durable as confirmed
-- (they stay counted until the order's stock is released), then takes the
-- settled entries off the head of the sale's settle queue.
-- A reservation's value ends in ':c' once confirmed under the sale's lease
-- (the reconciler), or in ':b' once the buy path told of its commit. Only
-- ':c' lets a rebuild drop a reservation whose order is no longer live:
-- the buy path marks without the lease, so its mark can land between a
-- rebuild's read of the live orders and its script, on an order committed
-- in between, which the rebuild must keep.
-- KEYS: 1 sale hash  2 reservations hash  3 settle queue
-- ARGV: 1 fencing token  2 n, the number of fields to confirm, then those
--       n fields, then the queue entries to take off, head first
-- An entry is taken off only while the queue's head is the entry expected:
-- a page settled twice (by a lease holder paused past its lease, before
-- the next holder fenced it) must not drop entries nobody settled.
-- Token 0 is the buy path telling of the orders it committed (':b'): a
-- fact whoever holds the sale's lease, so the fence is neither checked nor
-- written; it takes nothing off the queue.
-- Returns {confirmed, stale fence (1/0), entries taken off}
local token = tonumber(ARGV[1])
if token > 0 then
  local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
  if token < fence then return {0, 1, 0} end
  redis.call('HSET', KEYS[1], 'fence', token)
end
local n, confirmed = tonumber(ARGV[2]), 0
local mark = ':c'
if token == 0 then mark = ':b' end
for i = 3, 2 + n do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v and not string.find(v, ':c$') and not (token == 0 and string.find(v, ':b$')) then
    redis.call('HSET', KEYS[2], ARGV[i], v .. mark)
    confirmed = confirmed + 1
  end
end
local popped = 0
for i = 3 + n, #ARGV do
  if redis.call('LINDEX', KEYS[3], 0) ~= ARGV[i] then break end
  redis.call('LPOP', KEYS[3])
  popped = popped + 1
end
return {confirmed, 0, popped}
