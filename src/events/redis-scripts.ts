/**
 * The Lua scripts of the Redis broker. Each runs atomically in Redis, so a publish, a replay or
 * a claim sees one consistent state however many gateways act at once, and each takes one round
 * trip. Times are Redis's own (`TIME`), so gateways whose clocks differ still agree.
 *
 * Keys (all under `REDIS_KEY_PREFIX`, `<p>` below):
 * - `<p>history:<client>`    Stream; entries `i <event id> e <envelope JSON>`; `MAXLEN SSE_HISTORY`,
 *                            entries older than `SSE_HISTORY_TTL_MS` trimmed, the key expiring with them.
 * - `<p>qidx:<client>`       Hash question id → the question's key id (its questions, open or remembered).
 * - `<p>q:<id>`              Hash, one question (events/questions.ts): `qid`, `event` (envelope JSON),
 *                            `order` (µs), `targets` (JSON), `required` ('' or n), `state`, `created`,
 *                            `deadline` ('' or ms), `schema` ('' or JSON), `default` ('' or JSON),
 *                            `recorded` (JSON array), `count`, `voter:<client>` and `subject:<sub>`
 *                            (one vote each), `hold`, `hold_until`, `hold_answer`; it expires when
 *                            the question leaves (`QUESTION_TTL_MS` after its publish, or its close).
 * - `<p>deadlines`           Sorted set: question key id → deadline ms.
 * - `<p>deliveries`          Sorted set: question key id → when its expiry is next due to `hitl`;
 *                            `<p>delivery:<id>` Hash `key`, `question`, `body`, `attempts`, `give_up`.
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
 * Lua shared by the scripts that publish: an event retained in each target's history, counted
 * over the live instances' streams, and announced on the channel (`origin` '' makes every
 * instance deliver it, the publishing one included). `S` holds what every publish needs:
 * P prefix, history, ttl, window, live (instances).
 */
const PUBLISHING = `
local function settings(P, history, ttl, window)
  return { P = P, history = tonumber(history), ttl = tonumber(ttl), live = redis.call('ZRANGEBYSCORE', P .. 'instances', ms(now - tonumber(window)), '+inf') }
end
local function retain(S, client, event_id, envelope)
  if S.history > 0 then
    local key = S.P .. 'history:' .. client
    redis.call('XADD', key, 'MAXLEN', S.history, '*', 'i', event_id, 'e', envelope)
    redis.call('XTRIM', key, 'MINID', ms(now - S.ttl))
    redis.call('PEXPIRE', key, S.ttl)
  end
  local delivered = 0
  for _, instance in ipairs(S.live) do
    local streams = redis.call('HGET', S.P .. 'streams:' .. instance, client)
    if streams then delivered = delivered + tonumber(streams) end
  end
  return delivered
end
local function announce(S, origin, targets, envelope)
  if #targets > 0 then redis.call('PUBLISH', S.P .. 'events', origin .. '\\n' .. cjson.encode(targets) .. '\\n' .. envelope) end
end
local function publish_to(S, origin, targets, event_id, envelope)
  for _, client in ipairs(targets) do retain(S, client, event_id, envelope) end
  announce(S, origin, targets, envelope)
end
local function gateway_event(id, stamp, event_type, data)
  return '{"id":' .. cjson.encode(id) .. ',"event_type":"' .. event_type .. '","timestamp":"' .. stamp .. '","data":' .. data .. '}'
end
`

/** Lua shared by the question scripts: reading a question, and its standing for a client. */
const QUESTIONS = `
local function question_of(P, client, qid)
  local id = redis.call('HGET', P .. 'qidx:' .. client, qid)
  if not id then return nil end
  local key = P .. 'q:' .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('HDEL', P .. 'qidx:' .. client, qid)
    return nil
  end
  return id, key
end
local function held(key)
  local until_ms = tonumber(redis.call('HGET', key, 'hold_until') or '0')
  return until_ms > now
end
-- 'pending', 'answered' or 'closed' for this client (and token subject).
local function standing(key, client, subject)
  local state = redis.call('HGET', key, 'state')
  if state == 'answered' then return 'answered' end
  if state ~= 'pending' then return 'closed' end
  if held(key) then return 'answered' end
  if redis.call('HEXISTS', key, 'voter:' .. client) == 1 then return 'answered' end
  if subject ~= '' and redis.call('HEXISTS', key, 'subject:' .. subject) == 1 then return 'answered' end
  return 'pending'
end
local function append(list, item)
  if list == '[]' then return '[' .. item .. ']' end
  return string.sub(list, 1, -2) .. ',' .. item .. ']'
end
`

/** Lua shared by the scripts that close questions (after PUBLISHING and QUESTIONS). */
const CLOSING = `
-- Closed: remembered QUESTION_TTL_MS from now, off the deadlines; what the audit needs back.
local function close(P, id, key, outcome, ttl_ms)
  redis.call('HSET', key, 'state', outcome)
  redis.call('HDEL', key, 'hold', 'hold_until', 'hold_answer')
  redis.call('PEXPIRE', key, ttl_ms)
  redis.call('ZREM', P .. 'deadlines', id)
  local fields = redis.call('HMGET', key, 'qid', 'targets', 'recorded', 'created')
  return { outcome, fields[1], fields[2], fields[3], fields[4] }
end
-- The deadline passed: expired, and its outcome queued for hitl (at once, then retried).
local function expire(S, P, id, key, stamp, ttl_ms)
  local f = redis.call('HMGET', key, 'qid', 'targets', 'required', 'recorded', 'default', 'deadline')
  local targets = cjson.decode(f[2])
  local body, idempotency
  if f[3] ~= '' then
    body = '{"question_id":' .. cjson.encode(f[1]) .. ',"status":"expired","responses":' .. f[4] .. '}'
    idempotency = 'approvals/' .. f[1]
  else
    body = '{"question_id":' .. cjson.encode(f[1]) .. ',"client_id":' .. cjson.encode(targets[1]) .. ',"status":"expired"' .. (f[5] ~= '' and (',"response":' .. f[5]) or '') .. '}'
    idempotency = targets[1] .. ':' .. f[1]
  end
  redis.call('HSET', P .. 'delivery:' .. id, 'key', idempotency, 'question', f[1], 'body', body, 'attempts', '0', 'give_up', ms(tonumber(f[6]) + ttl_ms))
  redis.call('PEXPIRE', P .. 'delivery:' .. id, ttl_ms + 60000)
  redis.call('ZADD', P .. 'deliveries', now, id)
  local closure = close(P, id, key, 'expired', ttl_ms)
  publish_to(S, '', targets, id .. '.expired', gateway_event(id .. '.expired', stamp, 'question.expired', '{"question_id":' .. cjson.encode(f[1]) .. '}'))
  return closure
end
`

/**
 * ARGV: 1 prefix, 2 origin instance, 3 envelope JSON, 4 event id, 5 publisher id ('1': skip
 * targets already retaining it), 6 SSE_HISTORY, 7 SSE_HISTORY_TTL_MS, 8 question JSON ('' when
 * not a question: `{qid, id, required, deadline, schema, default}`, `default` and `schema` as
 * JSON text or ''), 9 QUESTION_TTL_MS, 10 presence window ms, 11 'connected' or 'list', 12…
 * target client ids.
 * Returns { delivered, target count, fresh targets }, or { 'taken', client, 'held' | 'pending' }
 * when the question's id is open for one of its targets and may not be replaced: being answered,
 * or either question an approval (nothing is published then).
 */
export const PUBLISH = new RedisScript(`${NOW}${PUBLISHING}${QUESTIONS}
local P = ARGV[1]
local S = settings(P, ARGV[6], ARGV[7], ARGV[10])
local order = string.format('%.0f', tonumber(clock[1]) * 1000000 + tonumber(clock[2]))
local targets = {}
if ARGV[11] == 'connected' then
  local seen = {}
  for _, instance in ipairs(S.live) do
    for _, client in ipairs(redis.call('HKEYS', P .. 'streams:' .. instance)) do
      if not seen[client] then seen[client] = true; targets[#targets + 1] = client end
    end
  end
else
  for i = 12, #ARGV do targets[#targets + 1] = ARGV[i] end
end
local question = nil
if ARGV[8] ~= '' then question = cjson.decode(ARGV[8]) end
-- A retry of a publish that took effect is a no-op: found before anything else is decided.
local fresh = {}
for _, client in ipairs(targets) do
  local duplicate = false
  if ARGV[5] == '1' then
    for _, entry in ipairs(redis.call('XRANGE', P .. 'history:' .. client, ms(now - S.ttl), '+')) do
      if entry[2][2] == ARGV[4] then duplicate = true; break end
    end
  end
  if not duplicate then fresh[#fresh + 1] = client end
end
-- Asked again under an open question's id: an approval, or one being answered, is not replaced;
-- a client's own open question is superseded (its deadline does nothing any more).
local superseded = {}
if question then
  for _, client in ipairs(fresh) do
    local old_id, key = question_of(P, client, question.qid)
    if key and redis.call('HGET', key, 'state') == 'pending' then
      if held(key) then return { 'taken', client, 'held' } end
      if question.required ~= '' or redis.call('HGET', key, 'required') ~= '' then return { 'taken', client, 'pending' } end
      superseded[#superseded + 1] = old_id
    end
  end
end
for _, old_id in ipairs(superseded) do
  redis.call('HSET', P .. 'q:' .. old_id, 'state', 'superseded')
  redis.call('ZREM', P .. 'deadlines', old_id)
end
local delivered = 0
for _, client in ipairs(fresh) do delivered = delivered + retain(S, client, ARGV[4], ARGV[3]) end
if question and #fresh > 0 then
  local ttl = tonumber(ARGV[9])
  -- One question shared by the approvers; one per client otherwise.
  local groups = {}
  if question.required ~= '' then groups[1] = fresh else for i, client in ipairs(fresh) do groups[i] = { client } end end
  for i, group in ipairs(groups) do
    local id = question.id .. ':' .. i
    local key = P .. 'q:' .. id
    redis.call('HSET', key, 'qid', question.qid, 'event', ARGV[3], 'order', order, 'targets', cjson.encode(group), 'required', question.required,
      'state', 'pending', 'created', ms(now), 'deadline', question.deadline, 'schema', question.schema, 'default', question.default, 'recorded', '[]', 'count', '0')
    redis.call('PEXPIRE', key, ttl)
    for _, client in ipairs(group) do
      local index = P .. 'qidx:' .. client
      local entries = redis.call('HSET', index, question.qid, id)
      if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
      -- Entries of questions gone are dropped every 64 new ones: a client asked often, who never
      -- connects, keeps an index of its live questions, not of every question ever asked.
      if entries == 1 and redis.call('HLEN', index) % 64 == 0 then
        for _, name in ipairs(redis.call('HKEYS', index)) do question_of(P, client, name) end
      end
    end
    if question.deadline ~= '' then redis.call('ZADD', P .. 'deadlines', question.deadline, id) end
  end
end
if #fresh > 0 then announce(S, ARGV[2], fresh, ARGV[3]) end
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
 * KEYS: 1 the client's question index. ARGV: 1 prefix, 2 client, 3 'pending' (frames, for a new
 * stream) or 'list' (views), 4… orders of questions the gateway holds framed already.
 * Returns per question pending for the client: `pending`: { order, envelope JSON ('' when held) };
 * `list`: { order, envelope JSON, created, deadline, required, count } (unsorted).
 */
export const PENDING = new RedisScript(`${NOW}${QUESTIONS}
local P, client = ARGV[1], ARGV[2]
local held_orders = {}
for i = 4, #ARGV do held_orders[ARGV[i]] = true end
local out = {}
for _, qid in ipairs(redis.call('HKEYS', KEYS[1])) do
  local _, key = question_of(P, client, qid)
  if key and standing(key, client, '') == 'pending' then
    local f = redis.call('HMGET', key, 'order', 'event', 'created', 'deadline', 'required', 'count')
    out[#out + 1] = f[1]
    if ARGV[3] == 'pending' then
      if held_orders[f[1]] then out[#out + 1] = '' else out[#out + 1] = f[2] end
    else
      for j = 2, 6 do out[#out + 1] = f[j] end
    end
  end
end
return out
`)

/**
 * ARGV: 1 prefix, 2 client, 3 question id, 4 subject ('' without).
 * Returns { 'pending', schema JSON or '' } or { 'unknown' | 'answered' | 'closed' }.
 */
export const LOOKUP = new RedisScript(`${NOW}${QUESTIONS}
local _, key = question_of(ARGV[1], ARGV[2], ARGV[3])
if not key then return { 'unknown' } end
local where = standing(key, ARGV[2], ARGV[4])
if where ~= 'pending' then return { where } end
return { 'pending', redis.call('HGET', key, 'schema') }
`)

/**
 * An answer (events/questions.ts, the state machine). ARGV: 1 prefix, 2 client, 3 question id,
 * 4 subject ('' without), 5 the answer JSON, 6 hold token, 7 hold lease ms, 8 progress event
 * id, 9 timestamp, 10 SSE_HISTORY, 11 SSE_HISTORY_TTL_MS, 12 presence window ms (13
 * QUESTION_TTL_MS, unused).
 * Returns { 'unknown' | 'answered' | 'closed' }, { 'recorded', n, required } (and
 * `question.progress` published), or { 'forward', responses JSON, approvals 0/1 } (held).
 */
export const ANSWER = new RedisScript(`${NOW}${PUBLISHING}${QUESTIONS}
local P, client, qid, subject = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local id, key = question_of(P, client, qid)
if not key then return { 'unknown' } end
local where = standing(key, client, subject)
if where ~= 'pending' then return { where } end
local f = redis.call('HMGET', key, 'required', 'recorded', 'count', 'targets')
local count = tonumber(f[3])
if f[1] ~= '' and count + 1 < tonumber(f[1]) then
  count = count + 1
  redis.call('HSET', key, 'recorded', append(f[2], ARGV[5]), 'count', count, 'voter:' .. client, '1')
  if subject ~= '' then redis.call('HSET', key, 'subject:' .. subject, '1') end
  local S = settings(P, ARGV[10], ARGV[11], ARGV[12])
  local data = '{"question_id":' .. cjson.encode(qid) .. ',"recorded":' .. count .. ',"required":' .. f[1] .. '}'
  publish_to(S, '', cjson.decode(f[4]), ARGV[8], gateway_event(ARGV[8], ARGV[9], 'question.progress', data))
  return { 'recorded', count, tonumber(f[1]) }
end
redis.call('HSET', key, 'hold', ARGV[6], 'hold_until', ms(now + tonumber(ARGV[7])), 'hold_answer', ARGV[5])
return { 'forward', append(f[2], ARGV[5]), f[1] ~= '' and 1 or 0 }
`)

/**
 * Ends a hold. ARGV: 1 prefix, 2 client, 3 question id, 4 hold token, 5 '1' delivered / '0' not,
 * 6 subject ('' without), 7 event id, 8 timestamp, 9 SSE_HISTORY, 10 SSE_HISTORY_TTL_MS,
 * 11 presence window ms, 12 QUESTION_TTL_MS.
 * Returns {} when the hold is no longer this one; else the closure
 * { outcome, qid, targets JSON, recorded JSON, created } when the question closed (answered, or
 * expired because its deadline passed while it was held), or { 'pending' }.
 */
export const SETTLE = new RedisScript(`${NOW}${PUBLISHING}${QUESTIONS}${CLOSING}
local P, client, qid = ARGV[1], ARGV[2], ARGV[3]
local id, key = question_of(P, client, qid)
if not key or redis.call('HGET', key, 'hold') ~= ARGV[4] then return {} end
local S = settings(P, ARGV[9], ARGV[10], ARGV[11])
local ttl = tonumber(ARGV[12])
if ARGV[5] == '0' then
  redis.call('HDEL', key, 'hold', 'hold_until', 'hold_answer')
  local deadline = redis.call('HGET', key, 'deadline')
  if deadline ~= '' and tonumber(deadline) <= now then return expire(S, P, id, key, ARGV[8], ttl) end
  return { 'pending' }
end
local f = redis.call('HMGET', key, 'recorded', 'hold_answer', 'targets', 'count')
redis.call('HSET', key, 'recorded', append(f[1], f[2]), 'count', tonumber(f[4]) + 1, 'voter:' .. client, '1')
if ARGV[6] ~= '' then redis.call('HSET', key, 'subject:' .. ARGV[6], '1') end
local closure = close(P, id, key, 'answered', ttl)
publish_to(S, '', cjson.decode(f[3]), ARGV[7], gateway_event(ARGV[7], ARGV[8], 'question.answered', '{"question_id":' .. cjson.encode(qid) .. '}'))
return closure
`)

/**
 * ARGV: 1 prefix, 2 client, 3 question id, 4 event id, 5 timestamp, 6 SSE_HISTORY,
 * 7 SSE_HISTORY_TTL_MS, 8 presence window ms, 9 QUESTION_TTL_MS.
 * Returns { 'unknown' | 'closed' | 'held' } or the closure (cancelled).
 */
export const CANCEL = new RedisScript(`${NOW}${PUBLISHING}${QUESTIONS}${CLOSING}
local P, client, qid = ARGV[1], ARGV[2], ARGV[3]
local id, key = question_of(P, client, qid)
if not key then return { 'unknown' } end
if redis.call('HGET', key, 'state') ~= 'pending' then return { 'closed' } end
if held(key) then return { 'held' } end
local targets = redis.call('HGET', key, 'targets')
local closure = close(P, id, key, 'cancelled', tonumber(ARGV[9]))
publish_to(settings(P, ARGV[6], ARGV[7], ARGV[8]), '', cjson.decode(targets), ARGV[4], gateway_event(ARGV[4], ARGV[5], 'question.cancelled', '{"question_id":' .. cjson.encode(qid) .. '}'))
return closure
`)

/**
 * The deadlines due now, expired: at most ARGV 2 of them. ARGV: 1 prefix, 2 limit, 3 (unused:
 * each expiry's event id is its question's), 4 timestamp, 5 SSE_HISTORY, 6 SSE_HISTORY_TTL_MS,
 * 7 presence window ms, 8 QUESTION_TTL_MS.
 * A held question waits for its hold (until its lease, should its holder die).
 * Returns the closures, one after another (5 values each).
 */
export const EXPIRE_DUE = new RedisScript(`${NOW}${PUBLISHING}${QUESTIONS}${CLOSING}
local P = ARGV[1]
local S = settings(P, ARGV[5], ARGV[6], ARGV[7])
local ttl = tonumber(ARGV[8])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'deadlines', '-inf', ms(now), 'LIMIT', 0, tonumber(ARGV[2]))) do
  local key = P .. 'q:' .. id
  if redis.call('EXISTS', key) == 0 or redis.call('HGET', key, 'state') ~= 'pending' then
    redis.call('ZREM', P .. 'deadlines', id)
  elseif held(key) then
    redis.call('ZADD', P .. 'deadlines', redis.call('HGET', key, 'hold_until'), id)
  else
    -- A hold whose holder died lapses with its lease.
    redis.call('HDEL', key, 'hold', 'hold_until', 'hold_answer')
    for _, value in ipairs(expire(S, P, id, key, ARGV[4], ttl)) do out[#out + 1] = value end
  end
end
return out
`)

/**
 * Claims the expiries due to `hitl` now, at most ARGV 2 of them, for ARGV 3 ms (a gateway
 * dying mid-delivery leaves its claim to lapse, and another delivers again). ARGV: 1 prefix.
 * Returns { id, key, question, body, attempts, give_up, … }.
 */
export const CLAIM_DELIVERIES = new RedisScript(`${NOW}
local P = ARGV[1]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'deliveries', '-inf', ms(now), 'LIMIT', 0, tonumber(ARGV[2]))) do
  local f = redis.call('HMGET', P .. 'delivery:' .. id, 'key', 'question', 'body', 'attempts', 'give_up')
  if not f[1] then
    redis.call('ZREM', P .. 'deliveries', id)
  else
    redis.call('ZADD', P .. 'deliveries', ms(now + tonumber(ARGV[3])), id)
    out[#out + 1] = id
    for j = 1, 5 do out[#out + 1] = f[j] end
  end
end
return out
`)

/**
 * After one attempt. ARGV: 1 prefix, 2 delivery id, 3 'done' or 'retry', 4 retry delay ms.
 * Returns 'done', 'retry', or 'gave_up' (past its give-up time).
 */
export const DELIVERED = new RedisScript(`${NOW}
local P, id = ARGV[1], ARGV[2]
local key = P .. 'delivery:' .. id
if ARGV[3] == 'retry' then
  local attempts = redis.call('HINCRBY', key, 'attempts', 1)
  local next_at = now + tonumber(ARGV[4])
  if next_at <= tonumber(redis.call('HGET', key, 'give_up') or '0') then
    redis.call('ZADD', P .. 'deliveries', ms(next_at), id)
    return 'retry'
  end
  redis.call('ZREM', P .. 'deliveries', id)
  redis.call('DEL', key)
  return 'gave_up'
end
redis.call('ZREM', P .. 'deliveries', id)
redis.call('DEL', key)
return 'done'
`)
