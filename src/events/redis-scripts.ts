/**
 * The Lua scripts of the Redis broker. Each runs atomically in Redis, so a publish, a replay or
 * a claim sees one consistent state however many gateways act at once, and each takes one round
 * trip. Times are Redis's own (`TIME`), so gateways whose clocks differ still agree.
 *
 * Keys (all under `REDIS_KEY_PREFIX`, `<p>` below):
 * - `<p>history:<client>`    Stream; entries `i <event id> e <envelope JSON>`; `MAXLEN SSE_HISTORY`,
 *                            entries older than `SSE_HISTORY_TTL_MS` trimmed, the key expiring with them.
 * - `<p>questions:<client>`  Hash question id → `<expires ms>:<claimed until ms>:<claim token>:<order>:<envelope JSON>`
 *                            (claimed until 0 and token `-` when not claimed).
 * - `<p>answered:<client>`   Hash question id → ms until which a second answer gets 409.
 * - `<p>events`              Channel: `<origin instance>\n<JSON array of client ids>\n<envelope JSON>`.
 * - presence keys: see `cluster/presence.ts`.
 *
 * Keys are derived inside the scripts (a broadcast's targets are only known there), so the
 * broker needs one Redis primary, not Redis Cluster.
 */
import { RedisScript } from '../cluster/redis-link'

const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function ms(n) return string.format('%.0f', n) end
`

/**
 * ARGV: 1 prefix, 2 origin instance, 3 envelope JSON, 4 event id, 5 publisher id ('1': skip
 * targets already retaining it), 6 SSE_HISTORY, 7 SSE_HISTORY_TTL_MS, 8 question id ('' when not
 * a question), 9 question expiry ms ('' for now + 10), 10 QUESTION_TTL_MS, 11 presence window ms,
 * 12 'connected' or 'list', 13… target client ids.
 * Returns { delivered, target count, fresh targets }.
 */
export const PUBLISH = new RedisScript(`${NOW}
local P = ARGV[1]
local order = string.format('%.0f', tonumber(clock[1]) * 1000000 + tonumber(clock[2]))
local live = redis.call('ZRANGEBYSCORE', P .. 'instances', ms(now - tonumber(ARGV[11])), '+inf')
local targets = {}
if ARGV[12] == 'connected' then
  local seen = {}
  for _, instance in ipairs(live) do
    for _, client in ipairs(redis.call('HKEYS', P .. 'streams:' .. instance)) do
      if not seen[client] then seen[client] = true; targets[#targets + 1] = client end
    end
  end
else
  for i = 13, #ARGV do targets[#targets + 1] = ARGV[i] end
end
local history, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local fresh, delivered = {}, 0
for _, client in ipairs(targets) do
  local key = P .. 'history:' .. client
  local duplicate = false
  if ARGV[5] == '1' then
    for _, entry in ipairs(redis.call('XRANGE', key, ms(now - ttl), '+')) do
      if entry[2][2] == ARGV[4] then duplicate = true; break end
    end
  end
  if not duplicate then
    fresh[#fresh + 1] = client
    if history > 0 then
      redis.call('XADD', key, 'MAXLEN', history, '*', 'i', ARGV[4], 'e', ARGV[3])
      redis.call('XTRIM', key, 'MINID', ms(now - ttl))
      redis.call('PEXPIRE', key, ttl)
    end
    if ARGV[8] ~= '' then
      local qkey = P .. 'questions:' .. client
      local expires = now + tonumber(ARGV[10])
      if ARGV[9] ~= '' then expires = tonumber(ARGV[9]) end
      redis.call('HDEL', P .. 'answered:' .. client, ARGV[8])
      if expires > now then
        redis.call('HSET', qkey, ARGV[8], ms(expires) .. ':0:-:' .. order .. ':' .. ARGV[3])
        if redis.call('PTTL', qkey) < expires - now then redis.call('PEXPIRE', qkey, ms(expires - now)) end
      end
    end
    for _, instance in ipairs(live) do
      local streams = redis.call('HGET', P .. 'streams:' .. instance, client)
      if streams then delivered = delivered + tonumber(streams) end
    end
  end
end
if #fresh > 0 then redis.call('PUBLISH', P .. 'events', ARGV[2] .. '\\n' .. cjson.encode(fresh) .. '\\n' .. ARGV[3]) end
return { delivered, #targets, fresh }
`)

/**
 * KEYS: 1 history. ARGV: 1 last event id ('0': everything), 2 SSE_HISTORY_TTL_MS, 3… entry ids
 * the gateway holds framed already (their envelopes are not sent again).
 * Returns { gap (0/1), entry id, envelope JSON ('' when held), … } oldest first.
 */
export const REPLAY = new RedisScript(`${NOW}
local entries = redis.call('XRANGE', KEYS[1], ms(now - tonumber(ARGV[2])), '+')
local out, first = { 0 }, 1
if ARGV[1] ~= '0' then
  local found
  for i, entry in ipairs(entries) do
    if entry[2][2] == ARGV[1] then found = i; break end
  end
  if found then first = found + 1 else out[1] = 1 end
end
local held = {}
for i = 3, #ARGV do held[ARGV[i]] = true end
for i = first, #entries do
  out[#out + 1] = entries[i][1]
  if held[entries[i][1]] then out[#out + 1] = '' else out[#out + 1] = entries[i][2][4] end
end
return out
`)

/**
 * KEYS: 1 questions. ARGV: 1… orders of questions the gateway holds framed already. Drops
 * expired, unclaimed questions.
 * Returns { order, envelope JSON ('' when held), order, envelope JSON, … } (unsorted).
 */
export const PENDING = new RedisScript(`${NOW}
local all = redis.call('HGETALL', KEYS[1])
local held = {}
for i = 1, #ARGV do held[ARGV[i]] = true end
local out = {}
for i = 1, #all, 2 do
  local expires, claimed, order, envelope = string.match(all[i + 1], '^(%d+):(%d+):[^:]+:(%d+):(.*)$')
  if tonumber(expires) <= now and tonumber(claimed) <= now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = order
    if held[order] then out[#out + 1] = '' else out[#out + 1] = envelope end
  end
end
return out
`)

/**
 * KEYS: 1 questions, 2 answered. ARGV: 1 question id, 2 claim lease ms, 3 claim token.
 * Returns 'claimed', 'answered' or 'unknown' (see `Broker.claimAnswer`). A claim whose holder
 * died lapses after the lease, and the question is pending again.
 */
export const CLAIM = new RedisScript(`${NOW}
local question = redis.call('HGET', KEYS[1], ARGV[1])
if not question then
  local answeredUntil = redis.call('HGET', KEYS[2], ARGV[1])
  if answeredUntil and tonumber(answeredUntil) > now then return 'answered' end
  return 'unknown'
end
local expires, claimed, rest = string.match(question, '^(%d+):(%d+):[^:]+:(.*)$')
if tonumber(claimed) > now then return 'answered' end
if tonumber(expires) <= now then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 'unknown'
end
redis.call('HSET', KEYS[1], ARGV[1], expires .. ':' .. ms(now + tonumber(ARGV[2])) .. ':' .. ARGV[3] .. ':' .. rest)
return 'claimed'
`)

/** Answered ids remembered per client before expired markers are swept out. */
const MAX_ANSWERED_REMEMBERED = 1000

/**
 * KEYS: 1 questions, 2 answered. ARGV: 1 question id, 2 '1' answered / '0' pending again,
 * 3 QUESTION_TTL_MS (how long the answered marker lasts), 4 the claim's token. A claim that is
 * no longer this token's (its lease lapsed and another answer claimed it) is left alone.
 */
export const SETTLE = new RedisScript(`${NOW}
local question = redis.call('HGET', KEYS[1], ARGV[1])
if not question then return 0 end
local expires, claimed, token, rest = string.match(question, '^(%d+):(%d+):([^:]+):(.*)$')
if token ~= ARGV[4] then return 0 end
if ARGV[2] == '0' then
  redis.call('HSET', KEYS[1], ARGV[1], expires .. ':0:-:' .. rest)
  return 1
end
local ttl = tonumber(ARGV[3])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ms(now + ttl))
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
if redis.call('HLEN', KEYS[2]) > ${MAX_ANSWERED_REMEMBERED} then
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) <= now then redis.call('HDEL', KEYS[2], all[i]) end
  end
end
return 1
`)
