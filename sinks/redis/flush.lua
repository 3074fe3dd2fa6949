--[[
flush.lua - apply one key group's share of a kpistream delta to Redis,
atomically (EVALSHA).

The build embeds this file into the sink (cmake/embed.cmake); nothing else
holds a copy.  It runs after a prologue the build generates from
engine/kpi_schema.h (tools/kpi_schema_lua.c): CF, the counters in the order of
struct kpi_counters; DF, the derived KPIs; DERIVED_INPUT, the counters their
formulas read; derived_values(c, active, v), the formulas.
The key schema is documented in docs/redis-schema.md, the exactly-once
argument in docs/exactly-once.md.

What one call does, in this order (nothing is written before step 1 passes):

 1. Fence.  For every offset range (topic:partition, from, to) it compares
    the group's stored next offset: all equal `from` (or none stored yet) ->
    apply; all equal `to` -> a replay: return {'dup'} and write nothing;
    anything else -> return {'conflict', ...} and write nothing.
 2. Per window, move the head (the newest bucket of the group's "current
    window instance") to the bucket holding watermark + lateness, if later.
    Buckets that leave the instance are subtracted from the rolling KPI
    hashes of the values they hold, buckets that enter (data written earlier,
    ahead of the head) are added: the idx set of a bucket lists its values.
 3. Per window bucket of the delta (rolled up by the C side): HINCRBY the
    counters into the bucket hash, write the sketch, add the value to the
    bucket's idx set.  Sketch writes are SETs whenever possible: the C side
    caches the sketches it wrote and sends the full new content with the
    token it last stored (bucket hash field _t); if the token still matches,
    nothing else wrote the key and a SET is exact.  Otherwise (another
    writer, no cache entry) the bytes are PFMERGEd (a SET if the key is new).
    Cells inside the current instance also go into the rolling KPI hash.
 4. Per touched (window, set, value): HINCRBY the rolling counters, derive
    the KPIs, update the values leaderboard.  `active` is recounted when the
    hash is (re)built and otherwise at most every `refresh` ms per value
    (jittered per value so recounts spread over flushes): for windows of at
    most 12 buckets a multi-key PFCOUNT over the instance's bucket sketches,
    for longer ones a PFCOUNT of the value's window sketch (ws, dense), which
    first merges the buckets changed since the last recount (_p) or is
    rebuilt when a bucket left.  A value whose rolling hash is missing (new,
    expired, inconsistent) is rebuilt from its buckets.
 5. Per window, append every bucket the watermark closed since the group's
    closed mark to the window's stream (one entry per set value), and an
    amendment entry (rev > 0) for every bucket of this delta that was closed
    before (a slower instance's data).
 6. Store the new offsets and the per-window marks.

Before step 2, the subscriber-base gauges (P:base:<set>:<value>, see
apply_base below) take this call's base snapshots and net adds; steps 4 and 5
write each value's base at the window's (or bucket's) start, and the KPIs
over it.

Cost: O(groups + touched values + values of the buckets that enter, leave or
close); the O(window) steps (a recount, a rebuild) are rate-limited per value
by `refresh`, except for values first seen.

ARGV (one flat list; numbers in decimal):
  '1' (protocol), key prefix with hash tag ('kpi:{group}:'), now_ms,
  watermark ('' when unknown), lateness_ms, stream maxlen, refresh_ms,
  write token (this call's _t),
  n_ranges, then per range: field ('topic:partition'), from, to,
  n_members, then per member: set, value, phase (0..999, recount jitter),
  n_windows, then per window: id, size_ms, slide_ms, bucket ttl_ms,
    rolling ttl_ms, n_groups, then per group: member index (1-based),
    bucket start, counter mask, one value per mask bit (in CF order),
    expected token ('' = merge the sketch), sketch;
    then n_trail, then per trailing value: member index (values to recount);
  then the base section: fallback window id ('' = none), n_base, then per
    base entry: member index, hour (ms, a multiple of 1 h), net adds
    (activations - churns of the hour), snapshots, their summed count.
KEYS[1] is the offsets key of the key group (it routes the call in Redis
Cluster); the prefix is that key group's ('kpi:{group.3}:').
Reply: {'ok', entries appended, rebuilds, sketch errors, per-group '1'/'0':
        '1' when the bucket sketch now holds exactly the bytes sent,
        counters saturated, then per window a '1'/'0' per member: '1' when
        that value's `active` was left for a later recount} |
       {'dup'} | {'conflict', field, stored, from, to} | an error reply.
]]

-- CF, DF, DERIVED_INPUT and derived_values come from the generated prologue.
-- derived_values(c, active, v, base, span): base 0 when unknown.
local NC, ND = #CF, #DF
-- Rolling hash fields read before an update: the counters, the active count,
-- when it was counted (_ms) and the buckets not yet merged into ws (_p).
local KF = {}
for i = 1, NC do KF[i] = CF[i] end
KF[NC + 1] = 'active'
KF[NC + 2] = '_ms'
KF[NC + 3] = '_p'
local HLL_DENSE_SIZE = 12304
local PFCOUNT_MAX_BUCKETS = 12 -- longer windows count through a window sketch
-- A rebuilt value whose buckets are all new in this call and hold at most
-- this many bytes of sparse sketches gets its window sketch by a sparse
-- PFMERGE: at most ~64 registers, a few us, where the dense rebuild below
-- costs ~40 us per value (most of a new group's first flush at 10 000
-- values; bench/RESULTS.md).
local SPARSE_MERGE_MAX = 128

-- Interpreter time, not Redis commands, dominates a big flush: the hot
-- loops below avoid per-field work for counters that did not change.

-- Field indexes of a counter mask, and the bucket-hash fields to HMGET for
-- it (those counters and the sketch token _t), cached per mask.
local mask_cache = {}
local function mask_fields(mask)
    local e = mask_cache[mask]
    if not e then
        local idx, names, m = {}, {}, mask
        for i = 1, NC do
            if m % 2 == 1 then
                idx[#idx + 1] = i
                names[#names + 1] = CF[i]
            end
            m = (m - m % 2) / 2
        end
        names[#names + 1] = '_t'
        e = {idx, names}
        mask_cache[mask] = e
    end
    return e[1], e[2]
end

-- cmd key args... for a list of any length: Lua's unpack() stops at a few
-- thousand values, so long lists go in slices (an even step keeps
-- score/member pairs together).
local function call_chunked(cmd, key, list)
    local n = #list
    for i = 1, n, 2000 do
        redis.call(cmd, key, unpack(list, i, math.min(i + 1999, n)))
    end
end

local function bs(b) -- a bucket start as the C side formats it
    return string.format('%d', b)
end

local pos = 1
local function nxt()
    local v = ARGV[pos]
    pos = pos + 1
    return v
end

if nxt() ~= '2' then
    return redis.error_reply('ERR kpistream: this script speaks flush protocol 2')
end
local P = nxt()
if KEYS[1] ~= P .. 'offsets' then
    return redis.error_reply('ERR kpistream: KEYS[1] must be the offsets key of the prefix')
end
local now_ms = nxt()
local now = tonumber(now_ms)
local wm = nxt()
wm = wm ~= '' and tonumber(wm) or nil
local lateness = tonumber(nxt())
local maxlen = nxt()
local refresh = tonumber(nxt())
local wtok = nxt()

local n_ranges = tonumber(nxt())
local rf, rfrom, rto = {}, {}, {}
for i = 1, n_ranges do
    rf[i] = nxt()
    rfrom[i] = nxt()
    rto[i] = nxt()
end
local n_members = tonumber(nxt())
local mem, mset, mval, phase, midx = {}, {}, {}, {}, {}
for i = 1, n_members do
    local set, value = nxt(), nxt()
    local m = set .. ':' .. value
    mem[i], mset[m], mval[m], phase[m], midx[m] = m, set, value, tonumber(nxt()), i
end
local n_cells = 0

-- Groups are kept as positions in ARGV (no table per counter).
local windows = {}
local n_windows = tonumber(nxt())
for wi = 1, n_windows do
    local w = {id = nxt(), size = tonumber(nxt()), slide = tonumber(nxt()), ttl_b = nxt(),
               ttl_k = nxt(), gm = {}, gb = {}, gmask = {}, gv = {}, gtok = {}, gsk = {}}
    local ng = tonumber(nxt())
    for gi = 1, ng do
        w.gm[gi] = mem[tonumber(nxt())]
        w.gb[gi] = nxt()
        local mask = tonumber(nxt())
        w.gmask[gi] = mask
        w.gv[gi] = pos
        pos = pos + #mask_fields(mask)
        w.gtok[gi] = nxt()
        local sk = nxt()
        w.gsk[gi] = sk
        if not w.gm[gi] or mask % 2 ~= 1 or string.sub(sk or '', 1, 4) ~= 'HYLL' then
            return redis.error_reply('ERR kpistream: malformed flush arguments')
        end
    end
    n_cells = n_cells + ng
    w.trail = {}
    for ti = 1, tonumber(nxt()) do
        w.trail[ti] = mem[tonumber(nxt())]
        if not w.trail[ti] then
            return redis.error_reply('ERR kpistream: malformed flush arguments (trailing)')
        end
    end
    windows[wi] = w
end

-- ---- Subscriber base (docs/kpis.md, "Subscriber base") ----
-- Kept apart from the window steps: parse_base, apply_base, base_at.
--
-- One hash per value, P:base:<set>:<value>, not windowed and never expired:
--   snap_hour  start of the UTC hour of the value's newest snapshot
--   snap       the sum of that hour's snapshots (one per finest combination)
--   net        net adds (activations - churns) of the hours >= snap_hour
--   base       snap + net: the base now (absent without a snapshot)
--   top        the newest hour with data for the value
--   n:<hour>   net adds of the hour, for the KEEP_HOURS hours up to top
--   d:<day>    net adds of the UTC day, for the KEEP_DAYS days up to top's day
--   ignored    snapshots ignored (older than the value's, or beyond the history)
-- It expires KEEP_DAYS + 1 days after its last write.
-- The history is what lets a snapshot that arrives after the events of its
-- hour still count them, and gives the base at a window's start.
local HOUR, DAY = 3600000, 86400000
local KEEP_HOURS, KEEP_DAYS = 48, 35
local base_fb -- the fallback window's id ("active base"), or nil
local base_in = {}
local function parse_base()
    base_fb = nxt()
    if base_fb == '' then base_fb = nil end
    for i = 1, tonumber(nxt()) do
        local m, hour, net, snaps, snap = mem[tonumber(nxt())], tonumber(nxt()), nxt(), nxt(), nxt()
        if not m or not hour or hour % HOUR ~= 0 or not tonumber(net) or not tonumber(snaps) or
                not tonumber(snap) then
            return false
        end
        base_in[i] = {m = m, hour = hour, net = tonumber(net), snaps = tonumber(snaps),
                      snap = tonumber(snap)}
    end
    return true
end
if not parse_base() then
    return redis.error_reply('ERR kpistream: malformed flush arguments (base)')
end
if pos ~= #ARGV + 1 then
    return redis.error_reply('ERR kpistream: malformed flush arguments (length)')
end

-- 1. Fence: read only; nothing has been written yet.
local offk = P .. 'offsets'
if n_ranges > 0 then
    local stored = redis.call('HMGET', offk, unpack(rf))
    local apply, dup, bad = true, true, nil
    for i = 1, n_ranges do
        local s = stored[i]
        local a = (s == false) or (s == rfrom[i])
        local d = (s ~= false) and (s == rto[i])
        if not a then apply = false end
        if not d then dup = false end
        if not a and not bad then bad = i end
    end
    if not apply then
        if dup then return {'dup'} end
        return {'conflict', rf[bad], stored[bad] or '', rfrom[bad], rto[bad]}
    end
end

local meta = P .. 'meta'
local since, clock_max -- the monthly KPIs' span: set before the windows run (below)
local tmp = P .. 'tmp'
local tmp0 = P .. 'tmp0'
local have_tmp0 = false
local entries, rebuilds, sk_errors = 0, 0, 0
local results = {} -- per group: '1' when the bucket sketch holds exactly the bytes sent

-- An HLL command whose failure (a corrupt sketch) must not abort the script
-- halfway: the counters and offsets stay exact, the estimate is what suffers.
local function hll(...)
    local r = redis.pcall(...)
    if type(r) == 'table' and r.err then
        sk_errors = sk_errors + 1
        return nil
    end
    return r
end

-- HINCRBY that cannot fail half-way: Redis refuses an increment that would
-- pass int64 ("ERR increment or decrement would overflow") after earlier
-- writes of this script are done, and a script is not rolled back.  So the
-- sum is checked first (as doubles: exact enough to tell a sum that is
-- within 2^10 of the limit) and a counter that would overflow is set to the
-- limit instead and counted in meta `saturated` (docs/redis-schema.md).  The
-- decoder bounds every input at 2^53, so this needs more than a thousand
-- events at that bound in one bucket of one value.
local saturated = 0

-- A key under the prefix that another program overwrote with a value of
-- another type is replaced, not failed on: a WRONGTYPE error half-way would
-- leave this call's earlier writes applied (docs/exactly-once.md, "Errors
-- that cannot leave half a flush").  What it held is gone already: a rolling
-- hash is made again from its buckets, a bucket hash starts again (and its
-- value's rolling hash is made again), a leaderboard, idx set, stream or
-- base gauge starts again from this call's writes.  Counted in meta
-- `replaced`.  Every read that could meet one goes through pcall (below),
-- every first write to a key not read before through own_type.
local replaced = 0
local function replace(key)
    redis.call('DEL', key)
    replaced = replaced + 1
end
local function own_type(key, want)
    local t = redis.call('TYPE', key).ok
    if t ~= want and t ~= 'none' then replace(key) end
end
-- A read of key that may hold another type: its reply, or nil after the
-- key was deleted (replaced) because it did.
local function read_own(...)
    local r = redis.pcall(...)
    if type(r) == 'table' and r.err then
        local key = select(2, ...)
        if string.sub(r.err, 1, 9) ~= 'WRONGTYPE' then error(r) end
        replace(key)
        return nil
    end
    return r
end
local I64_MAX, I64_MIN = '9223372036854775807', '-9223372036854775808'
local function incr(k, f, s)
    local cur = redis.call('HGET', k, f)
    local sum = (cur and tonumber(cur) or 0) + tonumber(s)
    if sum >= 9.2233720368547748e18 - 2048 then
        saturated = saturated + 1
        redis.call('HSET', k, f, I64_MAX)
        return tonumber(I64_MAX)
    elseif sum <= -9.2233720368547748e18 + 2048 then
        saturated = saturated + 1
        redis.call('HSET', k, f, I64_MIN)
        return tonumber(I64_MIN)
    end
    return redis.call('HINCRBY', k, f, s)
end

-- Exact counter arithmetic.  Lua numbers are doubles, exact for integers
-- below 2^53; inputs of at most 15 digits (< 10^15) keep every sum of a few
-- of them far below that.  A field with a longer input is HINCRBYed instead,
-- in Redis's int64.  acc[i] accumulates the contributions of field i as a
-- number, or turns into a list of signed strings once a long one is seen.
local function acc_add(acc, i, s, sign)
    local a = acc[i]
    if type(a) == 'table' or #s > 15 then
        if type(a) ~= 'table' then
            a = a and {string.format('%d', a)} or {}
            acc[i] = a
        end
        if sign < 0 then s = string.sub(s, 1, 1) == '-' and string.sub(s, 2) or '-' .. s end
        a[#a + 1] = s
    else
        local v = (a or 0) + sign * tonumber(s)
        if v > 4e15 or v < -4e15 then -- keep every partial sum far below 2^53
            acc[i] = {string.format('%d', a or 0), sign < 0 and '-' .. s or s}
        else
            acc[i] = v
        end
    end
end

-- Write acc into hash k (cur: its HMGET values by field index; all = every
-- counter field is written, zeros included).  Appends to hset; returns the
-- new value of field i in c[i] for the fields derived KPIs need.
DERIVED_INPUT[1] = true -- events: a value's score, and whether it still has data
local function write_acc(k, cur, acc, hset, all)
    local c = {}
    for i = 1, NC do
        local a, base = acc[i], cur[i]
        if type(a) == 'table' then
            local v
            for _, s in ipairs(a) do v = incr(k, CF[i], s) end
            c[i] = v
        elseif a or all then
            local b = base and tonumber(base) or 0
            if base and #base > 15 then
                c[i] = incr(k, CF[i], string.format('%d', a or 0))
            else
                local v = b + (a or 0)
                hset[#hset + 1] = CF[i]
                hset[#hset + 1] = string.format('%d', v)
                c[i] = v
            end
        elseif DERIVED_INPUT[i] then
            c[i] = base and tonumber(base) or 0
        end
    end
    return c
end

local function fmt(x)
    return string.format('%.10g', x)
end

-- Apply the call's base entries to their values' gauges.  Exact: every
-- quantity is an integer far below 2^53 (counts and net adds of subscribers).
-- Returns the set of members whose gauge changed.
local function apply_base()
    local by, changed = {}, {}
    for _, e in ipairs(base_in) do
        local l = by[e.m]
        if not l then
            l = {}
            by[e.m] = l
        end
        l[#l + 1] = e
    end
    for m, l in pairs(by) do
        local k = P .. 'base:' .. m
        local st = read_own('HMGET', k, 'snap_hour', 'snap', 'net', 'top') or {}
        local sh, snap, net, top = tonumber(st[1]), tonumber(st[2]), tonumber(st[3]) or 0,
                                   tonumber(st[4])
        local newtop = top
        for _, e in ipairs(l) do
            if not newtop or e.hour > newtop then newtop = e.hour end
        end
        local hlo = newtop - (KEEP_HOURS - 1) * HOUR -- oldest hour kept
        local dlo = newtop - newtop % DAY - (KEEP_DAYS - 1) * DAY
        local hset, hdel, ignored = {}, {}, 0
        if top and newtop > top then -- prune what left the history
            for h = top - (KEEP_HOURS - 1) * HOUR, math.min(top, hlo - HOUR), HOUR do
                hdel[#hdel + 1] = 'n:' .. bs(h)
            end
            local tday = top - top % DAY
            for d = tday - (KEEP_DAYS - 1) * DAY, math.min(tday, dlo - DAY), DAY do
                hdel[#hdel + 1] = 'd:' .. bs(d)
            end
        end
        if #hdel > 0 then redis.call('HDEL', k, unpack(hdel)) end
        -- Net adds: into the history, and into net when at or after the snapshot.
        local cand, cand_sum
        for _, e in ipairs(l) do
            if e.net ~= 0 then
                if e.hour >= hlo then redis.call('HINCRBY', k, 'n:' .. bs(e.hour), bs(e.net)) end
                local d = e.hour - e.hour % DAY
                if d >= dlo then redis.call('HINCRBY', k, 'd:' .. bs(d), bs(e.net)) end
                if sh and e.hour >= sh then net = net + e.net end
            end
            if e.snaps > 0 then
                if not cand or e.hour > cand then
                    if cand then ignored = ignored + 1 end
                    cand, cand_sum = e.hour, e.snap
                elseif e.hour == cand then
                    cand_sum = cand_sum + e.snap
                else
                    ignored = ignored + 1
                end
            end
        end
        -- The newest snapshot hour wins; the same hour adds up.
        if cand then
            if sh and cand == sh then
                snap = snap + cand_sum
            elseif sh and cand < sh then
                ignored = ignored + 1
            elseif top and cand < hlo then
                ignored = ignored + 1 -- its hour left the history: net since unknown
            else
                sh, snap, net = cand, cand_sum, 0
                local f = {}
                for h = cand, newtop, HOUR do f[#f + 1] = 'n:' .. bs(h) end
                for _, v in ipairs(redis.call('HMGET', k, unpack(f))) do
                    net = net + (tonumber(v) or 0)
                end
            end
        end
        hset[#hset + 1] = 'top'
        hset[#hset + 1] = bs(newtop)
        if sh then
            for _, x in ipairs({'snap_hour', sh, 'snap', snap, 'net', net, 'base', snap + net}) do
                hset[#hset + 1] = type(x) == 'number' and bs(x) or x
            end
        end
        redis.call('HSET', k, unpack(hset))
        redis.call('PEXPIRE', k, bs((KEEP_DAYS + 1) * DAY)) -- a value silent for longer is gone
        if ignored > 0 then redis.call('HINCRBY', k, 'ignored', ignored) end
        changed[m] = true
    end
    return changed
end

-- The gauge of a value as stored (after apply_base), read once per call.
local gauges = {}
local function gauge(m)
    local g = gauges[m]
    if g then return g end
    g = {hours = {}, days = {}}
    local all = read_own('HGETALL', P .. 'base:' .. m) or {}
    for i = 1, #all, 2 do
        local f, v = all[i], all[i + 1]
        local p2 = string.sub(f, 1, 2)
        if p2 == 'n:' then
            g.hours[#g.hours + 1] = {tonumber(string.sub(f, 3)), tonumber(v)}
        elseif p2 == 'd:' then
            g.days[#g.days + 1] = {tonumber(string.sub(f, 3)), tonumber(v)}
        else
            g[f] = v
        end
    end
    gauges[m] = g
    return g
end

-- The base of value m at time T (a window's or bucket's start): the base now
-- minus the net adds from the start of T's hour on (of T's day when the hour
-- has left the history).  Returns base (nil: unknown) and its source:
-- 'snapshot', 'active' (the fallback window's distinct subscribers) or ''.
local function base_at(m, T)
    local g = gauge(m)
    if g.base then
        local now, top = tonumber(g.base), tonumber(g.top)
        local h = T - T % HOUR
        if not top or h > top then return now, 'snapshot' end
        local sum = 0
        if h > top - KEEP_HOURS * HOUR then
            for _, x in ipairs(g.hours) do
                if x[1] >= h then sum = sum + x[2] end
            end
        else
            local d = T - T % DAY
            if d <= top - top % DAY - KEEP_DAYS * DAY then return nil, 'snapshot' end
            for _, x in ipairs(g.days) do
                if x[1] >= d then sum = sum + x[2] end
            end
        end
        return now - sum, 'snapshot'
    end
    if base_fb then
        if g.fb == nil then
            g.fb = tonumber(read_own('HGET', P .. 'kpi:' .. base_fb .. ':' .. m, 'active')) or
                       false
        end
        if g.fb then return g.fb, 'active' end
    end
    return nil, ''
end

-- Append the derived KPIs of engine/kpi.c (DF order) to a field/value list;
-- '' when undefined (zero denominator); then the base of value m at T (the
-- window's or bucket's start, base_at) and its source.  span: the window's
-- size or the bucket's width, ms.
local dv = {} -- reused: no table per value
local function add_derived(list, c, active, m, T, span)
    local v = dv
    local base, src = base_at(m, T)
    derived_values(c, active, v, base or 0, span)
    local n = #list
    for i = 1, ND do
        list[n + 2 * i - 1] = DF[i]
        list[n + 2 * i] = v[i] and fmt(v[i]) or ''
    end
    n = n + 2 * ND
    list[n + 1] = 'base'
    list[n + 2] = base and bs(base) or '' -- an integer: exact, not 10 digits
    list[n + 3] = 'base_source'
    list[n + 4] = src
end

local function split_member(m)
    local s, v = mset[m], mval[m]
    if s then return s, v end
    local i = string.find(m, ':', 1, true)
    return string.sub(m, 1, i - 1), string.sub(m, i + 1)
end

-- A dense all-zero HLL: merging it first makes PFMERGE build a dense result,
-- which costs O(registers) instead of the sparse encoding's O(n^2).
local function ensure_tmp0()
    if not have_tmp0 then
        redis.call('SET', tmp0, 'HYLL' .. string.rep('\0', HLL_DENSE_SIZE - 4))
        have_tmp0 = true
    end
end

local function process_window(w, base_changed)
    local size, slide, id = w.size, w.slide, w.id
    local pb = P .. 'b:' .. id .. ':'
    local ph = P .. 'h:' .. id .. ':'
    local pk = P .. 'kpi:' .. id .. ':'
    local pw = P .. 'ws:' .. id .. ':'
    local pi = P .. 'idx:' .. id .. ':'
    local pv = P .. 'values:' .. id .. ':'
    local stream = P .. 'stream:' .. id
    local hk, ck, fk = 'head:' .. id, 'closed:' .. id, 'first:' .. id
    local ttl_idx = tostring(tonumber(w.ttl_b) + size)

    local st = redis.call('HMGET', meta, hk, ck, fk)
    local h_old = st[1] and tonumber(st[1]) or nil
    local c_old = st[2] and tonumber(st[2]) or nil
    local f_old = st[3] and tonumber(st[3]) or nil
    local f_new = f_old -- the oldest bucket ever written: rebuilds need not look before it
    local H = h_old
    if wm then
        local clock = wm + lateness
        if clock >= 0 then
            local hc = clock - clock % slide
            if not H or hc > H then H = hc end
        end
    end
    local lo = H and H - size + slide
    local via_ws = size / slide > PFCOUNT_MAX_BUCKETS
    local stale_ms = math.min(slide, refresh)

    local T = {} -- member -> {acc = counter sums, merge = buckets for ws, leave, broken}
    local function touch(m)
        local t = T[m]
        if not t then
            t = {acc = {}, merge = {}, fresh = {}, leave = false, broken = false}
            T[m] = t
        end
        return t
    end
    local function add_bucket(t, v, sign) -- v: HMGET of a bucket hash's CF
        for i = 1, NC do
            local s = v[i]
            if s and s ~= '0' then acc_add(t.acc, i, s, sign) end
        end
    end
    local left = {}

    -- 2. Shift the current instance from h_old to H.
    if H and h_old and H > h_old then
        local lo_old = h_old - size + slide
        for b = lo_old, math.min(lo - slide, h_old), slide do
            local sb = bs(b)
            for _, m in ipairs(read_own('SMEMBERS', pi .. sb) or {}) do
                local t = touch(m)
                t.leave = true
                local v = read_own('HMGET', pb .. m .. ':' .. sb, unpack(CF)) or {false}
                if v[1] == false then
                    t.broken = true -- expired while inside the instance
                else
                    add_bucket(t, v, -1)
                end
            end
            left[#left + 1] = b
        end
    end
    if H and (not h_old or H > h_old) then
        local first = h_old and math.max(h_old + slide, lo) or lo
        for b = first, H, slide do
            local sb = bs(b)
            for _, m in ipairs(read_own('SMEMBERS', pi .. sb) or {}) do
                local v = read_own('HMGET', pb .. m .. ':' .. sb, unpack(CF)) or {false}
                if v[1] ~= false then
                    local t = touch(m)
                    add_bucket(t, v, 1)
                    t.merge[sb] = true
                end
            end
        end
    end

    -- 3. The delta's window buckets.
    local idx_add, amend = {}, {}
    local gm, gb, gmask, gv, gtok, gsk = w.gm, w.gb, w.gmask, w.gv, w.gtok, w.gsk
    for gi = 1, #gm do
        local m, sb = gm[gi], gb[gi]
        local bk = pb .. m .. ':' .. sb
        local idx, names = mask_fields(gmask[gi])
        local nf = #idx
        local vp = gv[gi]
        local cur = read_own('HMGET', bk, unpack(names))
        local lost = cur == nil -- another type was there: its counts are gone
        cur = cur or {false}
        local new = cur[1] == false -- events is in every group
        local hset = {}
        for q = 1, nf do
            local s, base = ARGV[vp + q - 1], cur[q]
            if not base then
                hset[#hset + 1] = names[q]
                hset[#hset + 1] = s
            elseif #base < 16 and #s < 16 then
                hset[#hset + 1] = names[q]
                hset[#hset + 1] = string.format('%d', tonumber(base) + tonumber(s))
            else
                incr(bk, names[q], s)
            end
        end
        local hkey = ph .. m .. ':' .. sb
        local sk, tok = gsk[gi], gtok[gi]
        local exact = true
        if tok ~= '' and cur[nf + 1] == tok then
            -- Nothing wrote the sketch since the C side cached it: sk is the
            -- cached content plus this delta, exactly.
            if not redis.call('SET', hkey, sk, 'XX', 'KEEPTTL') then
                redis.call('SET', hkey, sk, 'PX', w.ttl_b)
            end
        elseif new or redis.call('EXISTS', hkey) == 0 then
            redis.call('SET', hkey, sk, 'PX', w.ttl_b)
        else
            -- sk holds at least the delta and at most what the key once held
            -- plus the delta: merging it is exact either way.
            redis.call('SET', tmp, sk)
            hll('PFMERGE', hkey, tmp)
            exact = false
        end
        hset[#hset + 1] = '_t'
        hset[#hset + 1] = wtok
        redis.call('HSET', bk, unpack(hset))
        if new then redis.call('PEXPIRE', bk, w.ttl_b) end
        results[#results + 1] = exact and '1' or '0'
        local l = idx_add[sb]
        if not l then
            l = {}
            idx_add[sb] = l
        end
        l[#l + 1] = m
        local b = tonumber(sb)
        if not f_new or b < f_new then f_new = b end
        if H and b >= lo and b <= H then
            local t = touch(m)
            if lost then t.broken = true end -- the rolling hash held them
            local acc = t.acc
            for q = 1, nf do acc_add(acc, idx[q], ARGV[vp + q - 1], 1) end
            t.merge[sb] = true
            -- a bucket this call made, with a sparse sketch: its size
            if new and string.byte(sk, 5) == 1 then t.fresh[sb] = #sk end
        end
        if c_old and b < c_old then amend[#amend + 1] = {m, sb} end
    end
    for sb, l in pairs(idx_add) do
        own_type(pi .. sb, 'set')
        call_chunked('SADD', pi .. sb, l)
        redis.call('PEXPIRE', pi .. sb, ttl_idx)
    end
    -- Trailing recounts: values the caller wrote earlier without recounting
    -- `active` (not due yet) and did not write in this call.  Recounting
    -- them now is what makes every rolling hash exact at rest
    -- (docs/redis-schema.md, "active").
    if H then
        for _, m in ipairs(w.trail) do touch(m).force = true end
        -- Values whose base moved: their KPIs over the base are rewritten.
        for m in pairs(base_changed) do touch(m) end
    end
    local dirty = {} -- member index -> '1' when its active was not recounted

    -- 4. Rolling state of every touched value.
    local zsets = {} -- set -> values leaderboard changes
    local lo_data = lo and f_new and math.max(lo, f_new) or lo -- no bucket before f_new
    for m, t in pairs(T) do
        local kk, wsk = pk .. m, pw .. m
        local set, value = split_member(m)
        local cur = read_own('HMGET', kk, unpack(KF)) or {false} -- replaced: made again
        local rebuilt = cur[1] == false or t.broken
        local hset, c = {}, nil
        if rebuilt then
            -- New or inconsistent: rebuild from the instance's buckets (this
            -- delta's included, it was written above).
            rebuilds = rebuilds + 1
            redis.call('DEL', kk)
            local acc, have, small = {}, {}, 0
            for b = lo_data, H, slide do
                local sb = bs(b)
                local v = read_own('HMGET', pb .. m .. ':' .. sb, unpack(CF)) or {false}
                if v[1] ~= false then
                    for i = 1, NC do
                        local s = v[i]
                        if s and s ~= '0' then acc_add(acc, i, s, 1) end
                    end
                    have[#have + 1] = ph .. m .. ':' .. sb
                    small = small and t.fresh[sb] and small + t.fresh[sb]
                end
            end
            t.have = have
            t.small = small and small <= SPARSE_MERGE_MAX
            c = write_acc(kk, {}, acc, hset, true)
            cur = {}
        else
            c = write_acc(kk, cur, t.acc, hset, false)
        end
        local z = zsets[set]
        if not z then
            z = {add = {}, rem = {}}
            zsets[set] = z
        end
        if c[1] <= 0 then
            redis.call('DEL', kk, wsk)
            z.rem[#z.rem + 1] = value
        else
            local pend = cur[NC + 3]
            if not pend or pend == '' then pend = false end
            if via_ws then
                if rebuilt or t.leave then
                    pend = '*'
                elseif pend ~= '*' then
                    for sb in pairs(t.merge) do
                        if not pend then
                            pend = sb
                        elseif not string.find(' ' .. pend .. ' ', ' ' .. sb .. ' ', 1, true) then
                            pend = pend .. ' ' .. sb
                        end
                    end
                end
            end
            local active = tonumber(cur[NC + 1])
            local last = tonumber(cur[NC + 2])
            local due = t.force or rebuilt or not active or not last or refresh <= 0 or
                            now - last >= stale_ms * (1000 + (phase[m] or 500)) / 2000
            if due then
                if via_ws then
                    if rebuilt and t.small then
                        redis.call('DEL', wsk)
                        if #t.have > 0 then hll('PFMERGE', wsk, unpack(t.have)) end
                    elseif pend == '*' or redis.call('EXISTS', wsk) == 0 then
                        redis.call('DEL', wsk)
                        ensure_tmp0()
                        local keys = {tmp0}
                        for b = lo_data, H, slide do
                            keys[#keys + 1] = ph .. m .. ':' .. bs(b)
                            if #keys == 256 then
                                hll('PFMERGE', wsk, unpack(keys))
                                keys = {wsk}
                            end
                        end
                        hll('PFMERGE', wsk, unpack(keys))
                    elseif pend then
                        local keys = {}
                        for sb in string.gmatch(pend, '%S+') do
                            keys[#keys + 1] = ph .. m .. ':' .. sb
                        end
                        hll('PFMERGE', wsk, unpack(keys))
                    end
                    active = hll('PFCOUNT', wsk) or active or 0
                    redis.call('PEXPIRE', wsk, w.ttl_k)
                    pend = false
                else
                    local keys = {}
                    for b = lo_data, H, slide do keys[#keys + 1] = ph .. m .. ':' .. bs(b) end
                    active = #keys > 0 and hll('PFCOUNT', unpack(keys)) or active or 0
                end
                hset[#hset + 1] = 'active'
                hset[#hset + 1] = active
                hset[#hset + 1] = '_ms'
                hset[#hset + 1] = now_ms
            end
            -- Monthly KPIs scale the time the window's data covers: from the
            -- window's start or, when later, the key group's `since` (a new
            -- group), to the clock or the head bucket's end, whichever is
            -- first; at least a minute (or the slide, when shorter), so that
            -- a group's first seconds are not scaled to a month.  A window
            -- that has seen ten minutes is not an hour with no churn in the
            -- rest (docs/kpis.md).
            local start = math.max(lo_data, since or lo_data)
            local stop = H + slide
            if clock_max and clock_max < stop then stop = clock_max end
            add_derived(hset, c, active or 0, m, start,
                        math.max(math.min(slide, 60000), stop - start))
            hset[#hset + 1] = '_p'
            hset[#hset + 1] = pend or ''
            redis.call('HSET', kk, unpack(hset))
            if due then
                redis.call('PEXPIRE', kk, w.ttl_k)
            elseif midx[m] then
                dirty[midx[m]] = true
            end
            z.add[#z.add + 1] = c[1]
            z.add[#z.add + 1] = value
        end
    end
    for set, z in pairs(zsets) do
        own_type(pv .. set, 'zset')
        if #z.rem > 0 then call_chunked('ZREM', pv .. set, z.rem) end
        if #z.add > 0 then
            call_chunked('ZADD', pv .. set, z.add)
            redis.call('PEXPIRE', pv .. set, w.ttl_k)
        end
    end

    -- 5. Closed buckets and amendments to the window's stream.
    local stream_ok = false
    local function emit(m, sb)
        local bk = pb .. m .. ':' .. sb
        local v = read_own('HMGET', bk, unpack(CF))
        if not v or v[1] == false then return end
        local rev = redis.call('HINCRBY', bk, 'emitted', 1) - 1
        local c = {}
        for i = 1, NC do c[i] = tonumber(v[i]) or 0 end
        local active = hll('PFCOUNT', ph .. m .. ':' .. sb) or 0
        local set, value = split_member(m)
        local b = tonumber(sb)
        local args = {'XADD', stream, 'MAXLEN', '~', maxlen, '*', 'bucket', sb,
                      'end', bs(b + slide), 'set', set, 'value', value, 'rev', rev}
        for i = 1, NC do
            args[#args + 1] = CF[i]
            args[#args + 1] = v[i] or '0'
        end
        args[#args + 1] = 'active'
        args[#args + 1] = active
        add_derived(args, c, active, m, b, slide)
        if not stream_ok then
            own_type(stream, 'stream')
            stream_ok = true
        end
        redis.call(unpack(args))
        entries = entries + 1
    end
    local c_new = c_old
    if wm and wm >= 0 then
        local E = wm - wm % slide -- buckets starting before E are closed
        if not c_old or E > c_old then
            local first = E - (size / slide + math.ceil(lateness / slide) + 2) * slide
            if c_old and c_old > first then first = c_old end
            for b = first, E - slide, slide do
                local sb = bs(b)
                for _, m in ipairs(read_own('SMEMBERS', pi .. sb) or {}) do emit(m, sb) end
                if not lo or b < lo then redis.call('DEL', pi .. sb) end
            end
            c_new = E
        end
    end
    for _, a in ipairs(amend) do emit(a[1], a[2]) end
    for _, b in ipairs(left) do
        if c_new and b < c_new then redis.call('DEL', pi .. bs(b)) end
    end

    -- 6. Marks.
    local marks = {}
    if H and H ~= h_old then
        marks[#marks + 1] = hk
        marks[#marks + 1] = bs(H)
    end
    if c_new and c_new ~= c_old then
        marks[#marks + 1] = ck
        marks[#marks + 1] = bs(c_new)
    end
    if f_new and f_new ~= f_old then
        marks[#marks + 1] = fk
        marks[#marks + 1] = bs(f_new)
    end
    if #marks > 0 then redis.call('HSET', meta, unpack(marks)) end
    local d = {}
    for i = 1, n_members do d[i] = dirty[i] and '1' or '0' end
    return table.concat(d)
end

-- The span behind the monthly KPIs (docs/kpis.md) runs from the time this
-- key group's data begins, meta `since`, to its event-time clock.  `since`:
-- in one call, each window's earliest bucket start is at or before the
-- call's earliest event, and the latest of them (the finest window's) is
-- within one of its slides of it; the smallest over calls is kept.  A group
-- written before `since` existed starts from its oldest `first:` mark.
-- The clock: the largest watermark flushed (this call's included) plus the
-- lateness, the event time up to which every partition has delivered.
do
    local f = {'since', 'watermark'}
    for _, w in ipairs(windows) do f[#f + 1] = 'first:' .. w.id end
    local st = redis.call('HMGET', meta, unpack(f))
    since = tonumber(st[1])
    local mw = tonumber(st[2])
    if wm and (not mw or wm > mw) then mw = wm end
    clock_max = mw and mw + lateness
    local was = since
    if not since then
        for i = 3, #f do
            local b = tonumber(st[i])
            if b and (not since or b < since) then since = b end
        end
    end
    local call
    for _, w in ipairs(windows) do
        local lo_w
        for gi = 1, #w.gb do
            local b = tonumber(w.gb[gi])
            if not lo_w or b < lo_w then lo_w = b end
        end
        if lo_w and (not call or lo_w > call) then call = lo_w end
    end
    if call and (not since or call < since) then since = call end
    if since and since ~= was then redis.call('HSET', meta, 'since', bs(since)) end
end

local base_changed = apply_base()
local dirty_out = {}
-- The active-base fallback window first: the others read its `active`.
local order = {}
for wi, w in ipairs(windows) do
    if w.id == base_fb then table.insert(order, 1, wi) else order[#order + 1] = wi end
end
for _, wi in ipairs(order) do
    dirty_out[wi] = process_window(windows[wi], base_changed)
    if windows[wi].id == base_fb then
        for _, g in pairs(gauges) do g.fb = nil end -- read again, as just written
    end
end

if n_ranges > 0 then
    local args = {}
    for i = 1, n_ranges do
        args[#args + 1] = rf[i]
        args[#args + 1] = rto[i]
    end
    redis.call('HSET', offk, unpack(args))
end
local mw = redis.call('HGET', meta, 'watermark')
if wm and (not mw or wm > tonumber(mw)) then
    redis.call('HSET', meta, 'watermark', bs(wm))
end
if n_ranges > 0 or n_cells > 0 then redis.call('HINCRBY', meta, 'flushes', 1) end
if saturated > 0 then redis.call('HINCRBY', meta, 'saturated', saturated) end
if replaced > 0 then redis.call('HINCRBY', meta, 'replaced', replaced) end
redis.call('HSET', meta, 'last_flush_ms', now_ms, 'schema', '2')
if have_tmp0 then redis.call('DEL', tmp0) end
redis.call('DEL', tmp)
local reply = {'ok', entries, rebuilds, sk_errors, table.concat(results), saturated}
for wi = 1, #dirty_out do reply[#reply + 1] = dirty_out[wi] end
return reply
