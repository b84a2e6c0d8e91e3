/*
 * The fleet rate-limit decision: one Lua script, run atomically by Redis,
 * so that every gatehouse in front of one Redis takes from one counter and
 * two of them can never both take the last unit.
 *
 * One decision may cover several limits (a plan's throttle and its quota,
 * a route's per-second and per-hour limits): the script checks them all
 * and takes cost from each only when every one allows it, so a request
 * refused by one limit never uses up another.
 *
 * Which clock. By default the script reads the Redis server's clock (TIME)
 * and the gatehouses send none. Gatehouses' clocks differ by some skew; if
 * each sent its own, a gatehouse ahead of the others would refill a bucket
 * early and start the next window (day, month) early, so at every boundary
 * the fleet would admit up to twice a window's quota and a bucket would
 * refill faster than its rate. One clock, the server's, makes the decision
 * the same whichever gatehouse asks. TIME inside a script that then writes
 * is allowed because the script is replicated by its effects (the only
 * mode since Redis 7, the default since 5). A caller may pass its own
 * clock instead (now_ms != 0): tests inject time that way, and the integer
 * arithmetic is the same.
 *
 * Exactness. Lua numbers are doubles: every value is kept an integer below
 * 2^53 so that no rounding happens. A bucket is kept as credit = tokens *
 * period_ms (an integer): refilling el ms adds el * rate, taking cost
 * tokens subtracts cost * period_ms. gh_redis_limit_check bounds the
 * numbers. Values are stored with string.format('%d') so that a large one
 * is never written in exponent form.
 *
 * Keys. A bucket is a hash at key:b {c: credit, t: time of c, p: period it
 * was kept in (a reload that changes the period rescales it)} that expires
 * once it would be full again: a missing key is a full bucket. A window is
 * a counter at key:wSTART (a month's at key:mSTART; START: the window's
 * first ms, in decimal digits), created by the first take and expiring a
 * minute after the window ends; a denied take does not count. The suffix
 * ends in 'b' or in a digit after the last ':w' / ':m', so no key a caller
 * can choose, whatever its bytes, names another limit's state: without it
 * a key "victim:START" chosen by a client for its bucket would turn the
 * victim's window into the wrong type. Expiry times are relative
 * (PEXPIRE): they are in the script's clock, which may be a caller's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "store/redis_internal.h"

/* KEYS: one per limit. ARGV: now_ms (0: TIME), cost, then per limit: kind
 * (b, w, m), limit, rate, period_ms, offset_ms. Returns {allowed (all),
 * now_ms, then per limit: allowed (this one), remaining, reset_ms,
 * retry_after_ms (-1: never)}. */
static const char limit_lua[] =
    "local now = tonumber(ARGV[1])\n"
    "local cost = tonumber(ARGV[2])\n"
    "if now == 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "end\n"
    "local function int(x) return string.format('%d', x) end\n"
    "local floor = math.floor\n"
    "local ceil = math.ceil\n"
    /* Days since 1970-01-01 to (year, month) and back, in the proleptic
     * Gregorian calendar (eras of 400 years, 146097 days; years counted
     * from March so that the leap day is last). */
    "local function civil(z)\n"
    "  z = z + 719468\n"
    "  local era = floor(z / 146097)\n"
    "  local doe = z - era * 146097\n"
    "  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / "
    "365)\n"
    "  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))\n"
    "  local mp = floor((5 * doy + 2) / 153)\n"
    "  local m = mp + 3\n"
    "  if mp >= 10 then m = mp - 9 end\n"
    "  local y = yoe + era * 400\n"
    "  if m <= 2 then y = y + 1 end\n"
    "  return y, m\n"
    "end\n"
    "local function days(y, m)\n"
    "  if m <= 2 then y = y - 1 end\n"
    "  local era = floor(y / 400)\n"
    "  local yoe = y - era * 400\n"
    "  local mp = m - 3\n"
    "  if m <= 2 then mp = m + 9 end\n"
    "  local doy = floor((153 * mp + 2) / 5)\n"
    "  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468\n"
    "end\n"
    /* First every limit's state and its own verdict, writing nothing. */
    "local all = 1\n"
    "local ls = {}\n"
    "for i = 1, #KEYS do\n"
    "  local a = 2 + (i - 1) * 5\n"
    "  local l = {kind = ARGV[a + 1], limit = tonumber(ARGV[a + 2]), rate = tonumber(ARGV[a + "
    "3]),\n"
    "             period = tonumber(ARGV[a + 4]), offset = tonumber(ARGV[a + 5]), key = KEYS[i]}\n"
    "  if l.kind == 'b' then\n"
    "    local cap = l.limit * l.period\n"
    "    local credit = cap\n"
    "    local at = now\n"
    "    l.k = l.key .. ':b'\n"
    "    local st = redis.call('HMGET', l.k, 'c', 't', 'p')\n"
    "    local c0, t0, p0 = tonumber(st[1]), tonumber(st[2]), tonumber(st[3])\n"
    "    if c0 and t0 and p0 and p0 > 0 then\n"
    "      credit = c0\n"
    "      if p0 ~= l.period then credit = floor(c0 / p0 * l.period) end\n"
    "      if credit > cap then credit = cap end\n"
    "      if credit < 0 then credit = 0 end\n"
    /* A clock behind the last decision's refills nothing and keeps the
     * later time, so that no interval is refilled twice. */
    "      if t0 > now then at = t0 end\n"
    "      local el = at - t0\n"
    "      if el * l.rate >= cap - credit then credit = cap else credit = credit + el * l.rate "
    "end\n"
    "    end\n"
    "    l.cap = cap\n"
    "    l.credit = credit\n"
    "    l.at = at\n"
    "    l.need = cost * l.period\n"
    "    l.ok = l.need <= credit\n"
    "  elseif l.kind == 'w' or l.kind == 'm' then\n"
    "    local ws, we\n"
    "    if l.kind == 'w' then\n"
    "      ws = floor((now - l.offset) / l.period) * l.period + l.offset\n"
    "      we = ws + l.period\n"
    "    else\n"
    "      local y, m = civil(floor((now - l.offset) / 86400000))\n"
    "      ws = days(y, m) * 86400000 + l.offset\n"
    "      if m == 12 then y = y + 1; m = 1 else m = m + 1 end\n"
    "      we = days(y, m) * 86400000 + l.offset\n"
    "    end\n"
    "    l.k = l.key .. ':' .. l.kind .. int(ws)\n"
    "    l.we = we\n"
    "    l.used = tonumber(redis.call('GET', l.k) or '0') or 0\n"
    "    l.ok = l.used + cost <= l.limit\n"
    "  else\n"
    "    return redis.error_reply('ERR gatehouse limit: unknown kind')\n"
    "  end\n"
    "  if not l.ok then all = 0 end\n"
    "  ls[i] = l\n"
    "end\n"
    /* Then take from every limit, or from none. */
    "local out = {all, now}\n"
    "for i = 1, #ls do\n"
    "  local l = ls[i]\n"
    "  local remaining, reset, retry\n"
    "  if l.kind == 'b' then\n"
    "    local credit = l.credit\n"
    "    if all == 1 then credit = credit - l.need end\n"
    "    retry = 0\n"
    "    if not l.ok then\n"
    "      if l.need > l.cap then retry = -1\n"
    "      else retry = ceil((l.need - credit) / l.rate) + (l.at - now) end\n"
    "    end\n"
    "    reset = ceil((l.cap - credit) / l.rate) + (l.at - now)\n"
    "    if credit >= l.cap then\n"
    "      redis.call('DEL', l.k)\n"
    "    else\n"
    "      redis.call('HSET', l.k, 'c', int(credit), 't', int(l.at), 'p', int(l.period))\n"
    "      redis.call('PEXPIRE', l.k, int(reset + 60000))\n"
    "    end\n"
    "    remaining = floor(credit / l.period)\n"
    "  else\n"
    "    local used = l.used\n"
    "    if all == 1 and cost > 0 then\n"
    "      used = redis.call('INCRBY', l.k, int(cost))\n"
    "      if used == cost then redis.call('PEXPIRE', l.k, int(l.we - now + 60000)) end\n"
    "    end\n"
    "    remaining = l.limit - used\n"
    "    if remaining < 0 then remaining = 0 end\n"
    "    reset = l.we - now\n"
    "    retry = 0\n"
    "    if not l.ok then\n"
    "      if cost > l.limit then retry = -1 else retry = l.we - now end\n"
    "    end\n"
    "  end\n"
    "  local ok = 0\n"
    "  if l.ok then ok = 1 end\n"
    "  out[#out + 1] = ok\n"
    "  out[#out + 1] = remaining\n"
    "  out[#out + 1] = reset\n"
    "  out[#out + 1] = retry\n"
    "end\n"
    "return out\n";

static gh_redis_script_t script;
static pthread_once_t script_once = PTHREAD_ONCE_INIT;

static void script_init(void)
{
    gh_redis_script_init(&script, limit_lua);
}

const gh_redis_script_t *redis_limit_script(void)
{
    pthread_once(&script_once, script_init);
    return &script;
}

#define EXACT_MAX (UINT64_C(1) << 52)

int gh_redis_limit_check(const gh_redis_limit_t *lim)
{
    if (lim == NULL || lim->limit == 0 || lim->limit > EXACT_MAX)
        return -EINVAL;
    switch (lim->kind) {
    case GH_REDIS_LIMIT_BUCKET:
        if (lim->rate == 0 || lim->rate > EXACT_MAX || lim->period_ms == 0 ||
            lim->period_ms > EXACT_MAX / lim->limit)
            return -EINVAL;
        return 0;
    case GH_REDIS_LIMIT_WINDOW:
        if (lim->period_ms == 0 || lim->period_ms > EXACT_MAX)
            return -EINVAL;
        break;
    case GH_REDIS_LIMIT_MONTH:
        break;
    default:
        return -EINVAL;
    }
    if (lim->offset_ms > (int64_t)(UINT64_C(1) << 40) ||
        lim->offset_ms < -(int64_t)(UINT64_C(1) << 40))
        return -EINVAL;
    return 0;
}

static const char *put_u64(char *out, size_t *len, uint64_t v)
{
    *len = (size_t)snprintf(out, 24, "%llu", (unsigned long long)v);
    return out;
}

int redis_limit_args(redis_limit_args_t *a, const gh_redis_limit_key_t *keys, size_t n,
                     uint64_t cost, uint64_t now_ms)
{
    if (keys == NULL || n == 0 || n > GH_REDIS_LIMITS_MAX || now_ms > EXACT_MAX)
        return -EINVAL;
    uint64_t max_limit = 0;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].key == NULL || gh_redis_limit_check(&keys[i].lim) < 0)
            return -EINVAL;
        /* One key, one state: two limits on one key would each write it
         * as if the other were not there. */
        for (size_t j = 0; j < i; j++)
            if (keys[j].key_len == keys[i].key_len &&
                memcmp(keys[j].key, keys[i].key, keys[i].key_len) == 0)
                return -EINVAL;
        if (keys[i].lim.limit > max_limit)
            max_limit = keys[i].lim.limit;
    }
    /* A cost above every limit is refused by each for ever: sent as the
     * largest limit + 1, so the numbers stay small. A limit below the cost
     * compares it exactly enough (cost * period_ms past 2^53 still
     * exceeds its capacity), and nothing is written for it. */
    if (cost > max_limit)
        cost = max_limit + 1;
    size_t k = 0;
    a->n = n;
    for (size_t i = 0; i < n; i++) {
        a->argv[k] = keys[i].key;
        a->lens[k++] = keys[i].key_len;
    }
    a->argv[k] = put_u64(a->num[k], &a->lens[k], now_ms);
    k++;
    a->argv[k] = put_u64(a->num[k], &a->lens[k], cost);
    k++;
    for (size_t i = 0; i < n; i++) {
        const gh_redis_limit_t *l = &keys[i].lim;
        a->kind[i][0] = l->kind == GH_REDIS_LIMIT_BUCKET   ? 'b'
                        : l->kind == GH_REDIS_LIMIT_WINDOW ? 'w'
                                                           : 'm';
        a->kind[i][1] = '\0';
        a->argv[k] = a->kind[i];
        a->lens[k++] = 1;
        a->argv[k] = put_u64(a->num[k], &a->lens[k], l->limit);
        k++;
        a->argv[k] = put_u64(a->num[k], &a->lens[k], l->rate);
        k++;
        a->argv[k] = put_u64(a->num[k], &a->lens[k], l->period_ms);
        k++;
        a->lens[k] = (size_t)snprintf(a->num[k], 24, "%lld", (long long)l->offset_ms);
        a->argv[k] = a->num[k];
        k++;
    }
    a->argc = (int)k;
    return 0;
}

static int as_int(const redisReply *e, long long *v)
{
    if (e == NULL || e->type != REDIS_REPLY_INTEGER)
        return -1;
    *v = e->integer;
    return 0;
}

int redis_limit_parse(const struct redisReply *r, int *allowed, gh_redis_limit_result_t *res,
                      size_t n)
{
    long long all, now;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 + 4 * n ||
        as_int(r->element[0], &all) < 0 || as_int(r->element[1], &now) < 0 ||
        (all != 0 && all != 1) || now < 0)
        return -EPROTO;
    int every = 1;
    for (size_t i = 0; i < n; i++) {
        long long v[4];
        for (int j = 0; j < 4; j++)
            if (as_int(r->element[2 + 4 * i + (size_t)j], &v[j]) < 0)
                return -EPROTO;
        if ((v[0] != 0 && v[0] != 1) || v[1] < 0 || v[3] < -1 || (v[0] == 1) != (v[3] == 0))
            return -EPROTO;
        res[i].allowed = (int)v[0];
        res[i].remaining = (uint64_t)v[1];
        res[i].reset_ms = v[2] > 0 ? (uint64_t)v[2] : 0;
        res[i].retry_after_ms = v[3] < 0 ? GH_REDIS_NEVER : (uint64_t)v[3];
        res[i].now_ms = (uint64_t)now;
        every &= res[i].allowed;
    }
    if (every != all)
        return -EPROTO;
    *allowed = (int)all;
    return 0;
}
