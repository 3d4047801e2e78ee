-- Pop up to ARGV[2] messages and record each in kombu's unacked bookkeeping,
-- in one atomic step: a message is always either on its queue list or in the
-- unacked hash, never only in a consumer's memory.
--
-- KEYS[1] unacked hash       tag -> '[message, exchange, routing_key]' (kombu's layout)
-- KEYS[2] unacked_index zset tag -> delivery time (kombu's visibility timeout sweep)
-- KEYS[3] consumers zset     consumer id -> last heartbeat
-- KEYS[4] held hash          tag -> '<message length>:<list key>' for this consumer
-- KEYS[5] dead-letter list   envelopes that are not kombu messages (kept, not lost)
-- KEYS[6..] queue list keys, in the order BRPOP would be given them
-- ARGV[1] now (client clock, as kombu scores unacked_index), ARGV[2] max count,
-- ARGV[3] consumer id
-- Returns a flat array: list key, delivery tag, message, list key, delivery tag, ...
local now, limit, me = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out = {}
local taken = 0
redis.call('ZADD', KEYS[3], now, me)
for i = 6, #KEYS do
  if taken >= limit then break end
  local items = redis.call('RPOP', KEYS[i], limit - taken)
  if items then
    for _, raw in ipairs(items) do
      local ok, message = pcall(cjson.decode, raw)
      local props = ok and type(message) == 'table' and message['properties']
      local tag = type(props) == 'table' and props['delivery_tag']
      if type(tag) ~= 'string' then
        redis.call('LPUSH', KEYS[5], raw)
      else
        local info = props['delivery_info']
        if type(info) ~= 'table' then info = {} end
        local entry = '[' .. raw .. ',' .. cjson.encode(info['exchange'] or '') .. ','
          .. cjson.encode(info['routing_key'] or '') .. ']'
        redis.call('HSET', KEYS[1], tag, entry)
        redis.call('ZADD', KEYS[2], now, tag)
        redis.call('HSET', KEYS[4], tag, #raw .. ':' .. KEYS[i])
        taken = taken + 1
        out[#out + 1] = KEYS[i]
        out[#out + 1] = tag
        out[#out + 1] = raw
      end
    end
  end
end
return out
