#!/usr/bin/env python3
"""Cron oracle for wflow's comparison test (tests/e2e/cron.rs): croniter 7.0.0, an independent
implementation, behind a JSON-lines protocol.

    stdin, one JSON object a line:
        {"expr": "30 2 * * 1-5", "tz": "Europe/Paris", "start_ms": 1743206400000, "count": 5}
      optional keys:
        "policy": "croniter" (default: croniter's own answer) or "wflow" (croniter's answer with
                  wflow's one documented DST difference applied: when the hour field is not all
                  24 hours, the second occurrence of a repeated wall-clock time is dropped)
        "until_ms": N    drop instants at or after N (chrono-tz's tables end in 2099, after which
                  its last offsets hold; Python keeps applying the rules)
        "actual": [...]  wflow's answer; the reply is then an object
                  {"expected": [...], "verdict": "exact" | "croniter-omits-repeats" | "differ"}
                  where "croniter-omits-repeats" is croniter's known DST bug (after a fall-back it looks only once into the repeated range):
                  up to the earlier of the two lists' last instants, croniter's instants are a
                  subset of wflow's and every instant croniter lacks is the second occurrence of
                  a repeated wall-clock time.
    stdout, one line per input line, in order:
        [t1, t2, ...]          the next `count` fire instants, ms since the epoch, strictly after
                               start_ms, ascending (fewer only if croniter finds no more within
                               its 50-year horizon)
        {"error": "..."}       croniter refuses the expression (or the zone is unknown)
    A line {"version": true} answers {"croniter": ..., "tzdata": ..., "python": ...}: the test can
    check that tzdata's IANA version equals chrono_tz::IANA_TZDB_VERSION.

Semantics pinned here:
  * croniter(..., implement_cron_bug=True): the DOM/DOW rule of Vixie cron / cronie (a field
    whose text starts with '*' is unrestricted: then a day must match both fields; when both are
    restricted, either). croniter's default (day_or=True, no bug emulation) ORs whenever both
    expanded sets are not full, which is not what crontab does for `*/2` and the like.
  * the start instant is given as an aware datetime in zoneinfo.ZoneInfo(tz), loaded from the
    pip `tzdata` package only (system tz database ignored), so that the IANA version is pinned.
  * croniter computes on float seconds; inputs are ms and every output is a whole minute, so
    nothing is lost.

Generator: `python3 oracle.py --generate N [--seed S] [--count C] [--start-step]` prints N random
request lines covering the grammar wflow implements (see gen_expr below: numbers with and without
leading zeros, month and weekday names in any case, lists, ranges A-B with A < B, Sunday as 0, 7,
sun and as a range end A-sun, steps on * and on ranges, steps larger than the range, the aliases)
with start instants in 1995-2080, 60% of them within hours or days of a UTC offset change of the
chosen zone. --start-step also makes "N/S" items (croniter's N-LAST/S). Never made, because
croniter reads them differently from cron : equal ranges A-A, ranges that wrap (A-B with
A > B) except A-sun in day-of-week, a bare "*" inside a list, a "*/S" that is not the first item
of the day-of-month or day-of-week field, DOW "7/S", L W # ? H, 6 or 7 fields.

Where croniter is known to read cron differently (equal ranges as the whole field, wrapping
ranges, `N/S`, a full set collapsing to `*` when the other day field holds a `*`) the generator
does not go; where it has a known bug (a fall-back's second occurrences sometimes omitted) the
verdict names it rather than failing.
"""

import datetime as dt
import json
import random
import signal
import sys
import zoneinfo

zoneinfo.reset_tzpath(to=[])  # only the pinned `tzdata` package
from zoneinfo import ZoneInfo  # noqa: E402

import croniter as _croniter_mod  # noqa: E402
from croniter import croniter  # noqa: E402

UTC = dt.timezone.utc
TIMEOUT_S = 60  # days skipped whole (Pacific/Kiritimati 1994-12-31, Pacific/Apia 2011-12-30)
               # cost croniter ~5-15 s a call


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _second_occurrence(instant, zone):
    """True when instant's wall clock in zone also happened earlier (fall-back repeat)."""
    local = instant.astimezone(zone)
    if local.fold != 1:
        return False
    naive = local.replace(tzinfo=None)
    first = naive.replace(tzinfo=zone, fold=0)
    return first.utcoffset() != local.utcoffset()


def next_fires(expr, tzname, start_ms, count, policy="croniter", until_ms=None):
    zone = ZoneInfo(tzname)
    start = dt.datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(zone)
    it = croniter(expr, start, implement_cron_bug=True)
    every_hour = it.expanded[1] == ["*"] or len(it.expanded[1]) == 24
    out = []
    while len(out) < count:
        try:
            t = it.get_next(dt.datetime)
        except _croniter_mod.CroniterBadDateError:
            break
        if policy == "wflow" and not every_hour and _second_occurrence(t, zone):
            continue
        ms = round(t.timestamp() * 1000)
        if until_ms is not None and ms >= until_ms:
            break
        if out and ms <= out[-1]:
            raise RuntimeError(f"croniter went backwards or repeated: {ms} after {out[-1]}")
        out.append(ms)
    return out


def verdict(expected, actual, tzname):
    if expected == actual:
        return "exact"
    if not (isinstance(actual, list) and expected and actual):
        return "differ"
    zone = ZoneInfo(tzname)
    horizon = min(expected[-1], actual[-1])
    e = {x for x in expected if x <= horizon}
    a = {x for x in actual if x <= horizon}
    if e <= a and all(
        _second_occurrence(dt.datetime.fromtimestamp(x / 1000, UTC), zone) for x in a - e
    ):
        return "croniter-omits-repeats"
    return "differ"


def answer(req):
    if req.get("version"):
        import tzdata

        return {
            "croniter": getattr(_croniter_mod, "__version__", None) or _pkg_version("croniter"),
            "tzdata": tzdata.IANA_VERSION,
            "python": sys.version.split()[0],
        }
    try:
        signal.alarm(TIMEOUT_S)
        expected = next_fires(
            req["expr"], req["tz"], int(req["start_ms"]), int(req["count"]),
            req.get("policy", "croniter"), req.get("until_ms"),
        )
        if "actual" in req:
            return {"expected": expected, "verdict": verdict(expected, req["actual"], req["tz"])}
        return expected
    except _Timeout:
        return {"error": "timeout"}
    except (ValueError, KeyError, zoneinfo.ZoneInfoNotFoundError) as err:
        return {"error": f"{type(err).__name__}: {err}"}
    finally:
        signal.alarm(0)


def _pkg_version(name):
    from importlib.metadata import version

    return version(name)


# ---------------------------------------------------------------- generator

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# field: (low, high, names, name offset)
FIELDS = [(0, 59, None, 0), (0, 23, None, 0), (1, 31, None, 0), (1, 12, MONTHS, 1), (0, 7, DAYS, 0)]
START_STEP = False  # generate "N/S" items (set by --start-step)
ALIASES = ["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"]

ZONES = [
    "UTC", "Europe/Paris", "America/New_York", "Europe/London", "Europe/Dublin",
    "America/Los_Angeles", "America/Chicago", "America/Denver", "America/Phoenix",
    "America/St_Johns", "America/Santiago", "America/Havana", "America/Sao_Paulo",
    "America/Asuncion", "America/Nuuk", "America/Caracas", "Europe/Moscow", "Europe/Istanbul",
    "Africa/Casablanca", "Africa/Cairo", "Asia/Tehran", "Asia/Jerusalem", "Asia/Gaza",
    "Asia/Beirut", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Tokyo", "Asia/Shanghai",
    "Australia/Sydney", "Australia/Adelaide", "Australia/Lord_Howe", "Australia/Brisbane",
    "Pacific/Auckland", "Pacific/Chatham", "Pacific/Apia", "Pacific/Kiritimati",
    "Antarctica/Troll", "Atlantic/Azores", "America/Godthab", "US/Eastern", "Etc/GMT-14",
]


def _value_text(v, idx, r):
    low, high, names, off = FIELDS[idx]
    if names and r.random() < 0.3 and not (idx == 4 and v == 7):
        name = names[(v - off) % len(names)]
        return r.choice([name, name.upper(), name.capitalize()])
    if r.random() < 0.05 and v < 10:
        return "0" + str(v)
    return str(v)


def _item(idx, r, allow_star=True):
    low, high, names, off = FIELDS[idx]
    span = high - low + 1
    kind = r.random()
    if allow_star and kind < 0.12:
        return "*/" + str(r.choice([1, 2, 3, 4, 5, 6, 7, 10, 12, 15, 20, 30, span - 1, span, span + 3]
                               if span > 8 else [1, 2, 3, 4, 5, 6, 7, 9]))
    if kind < 0.55:
        return _value_text(r.randint(low, high), idx, r)
    # a range a-b with a < b (a == b means the whole field in croniter, one value in cron)
    a = r.randint(low, high - 1)
    b = r.randint(a + 1, high)
    if idx == 4 and b == 7 and r.random() < 0.3 and a > 0:
        b_text = r.choice(["0", "sun", "SUN"])  # A-Sun, cronie's and croniter's A-7
        return _value_text(a, idx, r) + "-" + b_text
    text = _value_text(a, idx, r) + "-" + _value_text(b, idx, r)
    if kind < 0.85:
        return text
    if START_STEP and kind < 0.93 and not (idx == 4 and a == 7):
        # N/S: start with a step, croniter's "N-LAST/S" (LAST = 6 in day-of-week); only with
        # --start-step: cronie and ISC cron refuse it . DOW 7/S is never made:
        # croniter reads it as 0-6/S.
        return _value_text(a, idx, r) + "/" + str(r.randint(1, max(2, span // 2)))
    return text + "/" + str(r.randint(1, max(2, (b - a) + 2)))


def gen_field(idx, r):
    x = r.random()
    star_weight = [0.35, 0.45, 0.6, 0.7, 0.6][idx]
    if x < star_weight:
        return "*"
    n = 1 if r.random() < 0.6 else r.randint(2, 4)
    # In day-of-month and day-of-week a "*/S" item only comes first: croniter reads a full set in
    # one of these fields as "*" whenever the other field's text contains a '*' anywhere, where
    # cron looks only at the first character (croniter's reading, not cron's).
    items = [_item(idx, r, allow_star=(k == 0 or idx not in (2, 4))) for k in range(n)]
    return ",".join(items)


def gen_expr(r):
    if r.random() < 0.04:
        return r.choice(ALIASES)
    if True:
        fields = [gen_field(i, r) for i in range(5)]
        if r.random() < 0.15:  # force DOM/DOW interplay
            fields[2] = r.choice(["*/2", "1", "1,15", "10-20", "*/10", "31", "1-31", "15"])
            fields[4] = r.choice(["*/2", "1", "mon-fri", "0", "7", "sat,sun", "1-5/2", "0-6"])
        return " ".join(fields)


_TRANSITIONS = {}


def transitions(tzname, y0=1995, y1=2080):
    if tzname in _TRANSITIONS:
        return _TRANSITIONS[tzname]
    zone = ZoneInfo(tzname)
    out = []
    t = dt.datetime(y0, 1, 1, tzinfo=UTC)
    end = dt.datetime(y1, 1, 1, tzinfo=UTC)
    step = dt.timedelta(hours=6)
    prev = t.astimezone(zone).utcoffset()
    while t < end:
        n = t + step
        off = n.astimezone(zone).utcoffset()
        if off != prev:
            lo, hi = t, n
            while hi - lo > dt.timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            out.append(int(hi.timestamp()) // 60 * 60 * 1000)
            prev = off
        t = n
    _TRANSITIONS[tzname] = out
    return out


def gen_case(r, count=5):
    tz = r.choice(ZONES)
    trs = transitions(tz)
    x = r.random()
    if trs and x < 0.6:
        base = r.choice(trs)
        width = r.choice([3 * 3600_000, 26 * 3600_000, 8 * 86400_000])
        start = base + r.randint(-width, width)
    else:
        lo = int(dt.datetime(1995, 1, 1, tzinfo=UTC).timestamp() * 1000)
        hi = int(dt.datetime(2080, 1, 1, tzinfo=UTC).timestamp() * 1000)
        start = r.randint(lo, hi)
    if r.random() < 0.3:
        start = start // 60000 * 60000  # exactly on a minute, to exercise "strictly after"
    return {"expr": gen_expr(r), "tz": tz, "start_ms": start, "count": count}


def main(argv):
    if len(argv) >= 2 and argv[1] == "--generate":
        n = int(argv[2])
        seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 1
        count = int(argv[argv.index("--count") + 1]) if "--count" in argv else 5
        global START_STEP
        START_STEP = "--start-step" in argv
        r = random.Random(seed)
        for _ in range(n):
            print(json.dumps(gen_case(r, count)))
        return
    signal.signal(signal.SIGALRM, _alarm)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except json.JSONDecodeError as err:
            out = {"error": f"bad JSON: {err}"}
        else:
            out = answer(req)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
    main(sys.argv)
