"""Lua scripts for every multi-key write, so Redis runs each check-and-write atomically.

Each script touches only the keys it is given. Each is safe to run twice with the same
arguments (redis-py retries a command whose connection broke): a create finds its own id
under the name, an update finds its own new etag.
"""

# KEYS: agent doc, name index, order index, owner's order index, shared order index
#       [, idempotency key]
# ARGV: id, name, doc JSON, created_ms, shared ('1'/'0')[, idempotency record, ttl seconds]
# → {"created"} | {"replay", record} | {"name_taken"}
CREATE = """
if KEYS[6] then
  local previous = redis.call('GET', KEYS[6])
  if previous then return {'replay', previous} end
end
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder and holder ~= ARGV[1] then return {'name_taken'} end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
if ARGV[5] == '1' then redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1]) end
if KEYS[6] then redis.call('SET', KEYS[6], ARGV[6], 'EX', ARGV[7]) end
return {'created'}
"""

# KEYS: agent doc, name index, shared order index
# ARGV: id, expected etag, new doc JSON, new name, new etag, created_ms, shared ('1'/'0')
# → "updated" | "not_found" | "etag_mismatch" | "name_taken"
UPDATE = """
local current = redis.call('GET', KEYS[1])
if not current then return 'not_found' end
local doc = cjson.decode(current)
if doc.etag == ARGV[5] then return 'updated' end
if doc.etag ~= ARGV[2] then return 'etag_mismatch' end
if doc.name ~= ARGV[4] then
  local owner = redis.call('HGET', KEYS[2], ARGV[4])
  if owner and owner ~= ARGV[1] then return 'name_taken' end
  if redis.call('HGET', KEYS[2], doc.name) == ARGV[1] then
    redis.call('HDEL', KEYS[2], doc.name)
  end
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[1])
end
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return 'updated'
"""

# KEYS: agent doc, name index, order index, owner's order index, shared order index
# ARGV: id, expected etag ('' = any)
# → "deleted" | "not_found" | "etag_mismatch"
DELETE = """
local current = redis.call('GET', KEYS[1])
if not current then return 'not_found' end
local doc = cjson.decode(current)
if ARGV[2] ~= '' and doc.etag ~= ARGV[2] then return 'etag_mismatch' end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
if redis.call('HGET', KEYS[2], doc.name) == ARGV[1] then
  redis.call('HDEL', KEYS[2], doc.name)
end
return 'deleted'
"""

# KEYS: order index
# ARGV: count, cursor created_ms ('' = from the start), cursor id
# → {total, {id, score, id, score, ...}} starting right after the cursor
# Ids have one fixed format (agt_ + hex), so Lua's string order matches the sorted set's.
PAGE = """
local start = 0
if ARGV[2] ~= '' then
  start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[2])
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2])) do
    if member <= ARGV[3] then start = start + 1 end
  end
end
local entries = redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[1]) - 1, 'WITHSCORES')
return {redis.call('ZCARD', KEYS[1]), entries}
"""

# The agents one caller sees: its own and the shared ones, in the same order as PAGE.
# KEYS: owner's order index, shared order index
# ARGV: count, cursor created_ms ('' = from the start), cursor id
# → {total visible, {id, score, id, score, ...}} starting right after the cursor
PAGE_VISIBLE = """
local all = redis.call('ZUNION', 2, KEYS[1], KEYS[2], 'AGGREGATE', 'MAX', 'WITHSCORES')
local out = {}
local limit = tonumber(ARGV[1]) * 2
local started = ARGV[2] == ''
local cursor_score = tonumber(ARGV[2])
for i = 1, #all, 2 do
  local score = tonumber(all[i + 1])
  if not started and (score > cursor_score or (score == cursor_score and all[i] > ARGV[3])) then
    started = true
  end
  if started then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
    if #out >= limit then break end
  end
end
return {#all / 2, out}
"""
