/*
 * The fleet rate-limit decision: one Lua script, run atomically by Redis,
 * so that every gatehouse in front of one Redis takes from one counter and
 * two of them can never both take the last unit.
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
 * Keys. A bucket is a hash {c: credit, t: time of c, p: period it was kept
 * in (a reload that changes the period rescales it)} that expires once it
 * would be full again: a missing key is a full bucket. A window is a
 * counter named key:START (START: the window's first ms), created by the
 * first take and expiring a minute after the window ends; a denied take
 * does not count. Expiry times are relative (PEXPIRE): they are in the
 * script's clock, which may be a caller's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "store/redis_internal.h"

/* ARGV: kind (b, w, m), limit, rate, period_ms, offset_ms, cost, now_ms
 * (0: TIME). Returns {allowed, remaining, reset_ms, retry_after_ms (-1:
 * never), now_ms}. */
static const char limit_lua[] =
    "local kind = ARGV[1]\n"
    "local limit = tonumber(ARGV[2])\n"
    "local rate = tonumber(ARGV[3])\n"
    "local period = tonumber(ARGV[4])\n"
    "local offset = tonumber(ARGV[5])\n"
    "local cost = tonumber(ARGV[6])\n"
    "local now = tonumber(ARGV[7])\n"
    "if now == 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "end\n"
    "local function int(x) return string.format('%d', x) end\n"
    "local floor = math.floor\n"
    "local ceil = math.ceil\n"
    "local key = KEYS[1]\n"
    "if kind == 'b' then\n"
    "  local cap = limit * period\n"
    "  local credit = cap\n"
    "  local at = now\n"
    "  local st = redis.call('HMGET', key, 'c', 't', 'p')\n"
    "  local c0, t0, p0 = tonumber(st[1]), tonumber(st[2]), tonumber(st[3])\n"
    "  if c0 and t0 and p0 and p0 > 0 then\n"
    "    credit = c0\n"
    "    if p0 ~= period then credit = floor(c0 / p0 * period) end\n"
    "    if credit > cap then credit = cap end\n"
    "    if credit < 0 then credit = 0 end\n"
    /* A clock behind the last decision's refills nothing and keeps the
     * later time, so that no interval is refilled twice. */
    "    if t0 > now then at = t0 end\n"
    "    local el = at - t0\n"
    "    if el * rate >= cap - credit then credit = cap else credit = credit + el * rate end\n"
    "  end\n"
    "  local need = cost * period\n"
    "  local allowed = 0\n"
    "  if need <= credit then\n"
    "    credit = credit - need\n"
    "    allowed = 1\n"
    "  end\n"
    "  local retry = 0\n"
    "  if allowed == 0 then\n"
    "    if need > cap then retry = -1 else retry = ceil((need - credit) / rate) + (at - now) end\n"
    "  end\n"
    "  local full = ceil((cap - credit) / rate) + (at - now)\n"
    "  if credit >= cap then\n"
    "    redis.call('DEL', key)\n"
    "  else\n"
    "    redis.call('HSET', key, 'c', int(credit), 't', int(at), 'p', int(period))\n"
    "    redis.call('PEXPIRE', key, int(full + 60000))\n"
    "  end\n"
    "  return {allowed, floor(credit / period), full, retry, now}\n"
    "end\n"
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
    "local ws, we\n"
    "if kind == 'w' then\n"
    "  ws = floor((now - offset) / period) * period + offset\n"
    "  we = ws + period\n"
    "elseif kind == 'm' then\n"
    "  local y, m = civil(floor((now - offset) / 86400000))\n"
    "  ws = days(y, m) * 86400000 + offset\n"
    "  if m == 12 then y = y + 1; m = 1 else m = m + 1 end\n"
    "  we = days(y, m) * 86400000 + offset\n"
    "else\n"
    "  return redis.error_reply('ERR gatehouse limit: unknown kind')\n"
    "end\n"
    "local k = key .. ':' .. int(ws)\n"
    "local used = tonumber(redis.call('GET', k) or '0') or 0\n"
    "local allowed = 0\n"
    "if used + cost <= limit then\n"
    "  allowed = 1\n"
    "  if cost > 0 then\n"
    "    used = redis.call('INCRBY', k, int(cost))\n"
    "    if used == cost then redis.call('PEXPIRE', k, int(we - now + 60000)) end\n"
    "  end\n"
    "end\n"
    "local remaining = limit - used\n"
    "if remaining < 0 then remaining = 0 end\n"
    "local retry = 0\n"
    "if allowed == 0 then\n"
    "  if cost > limit then retry = -1 else retry = we - now end\n"
    "end\n"
    "return {allowed, remaining, we - now, retry, now}\n";

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

static size_t put_u64(char *out, uint64_t v)
{
    return (size_t)snprintf(out, 24, "%llu", (unsigned long long)v);
}

int redis_limit_args(redis_limit_args_t *a, const char *key, size_t key_len,
                     const gh_redis_limit_t *lim, uint64_t cost, uint64_t now_ms)
{
    if (gh_redis_limit_check(lim) < 0 || key == NULL || now_ms > EXACT_MAX)
        return -EINVAL;
    /* Any cost above the limit is refused for ever; capped so that cost *
     * period_ms stays exact. */
    if (cost > lim->limit)
        cost = lim->limit + 1;
    a->kind[0] = lim->kind == GH_REDIS_LIMIT_BUCKET   ? 'b'
                 : lim->kind == GH_REDIS_LIMIT_WINDOW ? 'w'
                                                      : 'm';
    a->kind[1] = '\0';
    a->argv[0] = key;
    a->lens[0] = key_len;
    a->argv[1] = a->kind;
    a->lens[1] = 1;
    uint64_t v[5] = {lim->limit, lim->rate, lim->period_ms, 0, cost};
    for (int i = 0; i < 5; i++) {
        if (i == 3)
            continue;
        a->lens[2 + i] = put_u64(a->num[i], v[i]);
        a->argv[2 + i] = a->num[i];
    }
    a->lens[5] = (size_t)snprintf(a->num[3], 24, "%lld", (long long)lim->offset_ms);
    a->argv[5] = a->num[3];
    a->lens[7] = put_u64(a->num[5], now_ms);
    a->argv[7] = a->num[5];
    return 0;
}

static int as_int(const redisReply *e, long long *v)
{
    if (e == NULL || e->type != REDIS_REPLY_INTEGER)
        return -1;
    *v = e->integer;
    return 0;
}

int redis_limit_parse(const struct redisReply *r, gh_redis_limit_result_t *res)
{
    long long v[5];
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 5)
        return -EPROTO;
    for (int i = 0; i < 5; i++)
        if (as_int(r->element[i], &v[i]) < 0)
            return -EPROTO;
    if ((v[0] != 0 && v[0] != 1) || v[1] < 0 || v[4] < 0 || v[3] < -1)
        return -EPROTO;
    res->allowed = (int)v[0];
    res->remaining = (uint64_t)v[1];
    res->reset_ms = v[2] > 0 ? (uint64_t)v[2] : 0;
    res->retry_after_ms = v[3] < 0 ? GH_REDIS_NEVER : (uint64_t)v[3];
    res->now_ms = (uint64_t)v[4];
    return 0;
}
