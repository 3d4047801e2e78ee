-- Record this consumer's heartbeat, then requeue what dead consumers held.
-- One script, so two live workers reaping the same dead consumer cannot both
-- requeue its messages: the first removes it, the second finds nothing.
--
-- KEYS[1] unacked hash, KEYS[2] unacked_index zset, KEYS[3] consumers zset
-- ARGV[1] now, ARGV[2] this consumer's id ('' for a sweep without beating),
-- ARGV[3] dead before (consumers whose last beat is older are dead),
-- ARGV[4] held hash key prefix (consumer id appended), ARGV[5] max consumers per call
-- Returns {dead consumers reaped, messages requeued}.
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[3],
  'LIMIT', 0, tonumber(ARGV[5]))
local requeued = 0
for _, consumer in ipairs(dead) do
  local held_key = ARGV[4] .. consumer
  local held = redis.call('HGETALL', held_key)
  for j = 1, #held, 2 do
    local tag, where = held[j], held[j + 1]
    local entry = redis.call('HGET', KEYS[1], tag)
    -- Gone from the unacked hash: acknowledged, or already restored by kombu.
    if entry then
      local colon = string.find(where, ':', 1, true)
      local length = tonumber(string.sub(where, 1, colon - 1))
      -- The entry starts with '[' followed by the message exactly as popped.
      redis.call('RPUSH', string.sub(where, colon + 1), string.sub(entry, 2, 1 + length))
      redis.call('HDEL', KEYS[1], tag)
      redis.call('ZREM', KEYS[2], tag)
      requeued = requeued + 1
    end
  end
  redis.call('DEL', held_key)
  redis.call('ZREM', KEYS[3], consumer)
end
return {#dead, requeued}
