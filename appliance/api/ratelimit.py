"""Rate limits per principal and per org: token buckets in Redis, so every API process (and
every host) shares them. One Lua script checks both buckets and takes a token from each only
when both have one, with Redis's clock, so API hosts with skewed clocks agree.

Failed authentications have a bucket per client address, checked before any token is
verified: once it is empty, every request from that address answers 429 until it refills.
The same script counts those failures and refusals for the audit log, which gets one row per
address per window instead of one per failure."""
from __future__ import annotations

from redis import Redis

from appliance.api.auth import Principal
from appliance.errors import RateLimited
from appliance.settings import Settings

_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local levels, waits = {}, {}
for i = 1, 2 do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil then tokens, at = burst, now end
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  levels[i] = tokens
  waits[i] = tokens >= 1 and 0 or (1 - tokens) / rate
end
local allowed = (levels[1] >= 1 and levels[2] >= 1) and 1 or 0
for i = 1, 2 do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local left = levels[i] - allowed
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return {allowed, tostring(waits[1]), tostring(waits[2])}
"""


class RateLimiter:
    def __init__(self, redis: Redis, settings: Settings):
        self._take = redis.register_script(_TAKE)
        self.settings = settings

    def check(self, principal: Principal) -> None:
        s = self.settings
        allowed, principal_wait, org_wait = self._take(
            keys=[f"sqlrs:rate:principal:{principal.subject}", f"sqlrs:rate:org:{principal.org}"],
            args=[s.rate_limit_per_principal, s.rate_limit_principal_burst, s.rate_limit_per_org, s.rate_limit_org_burst])
        if int(allowed):
            return
        principal_wait, org_wait = float(principal_wait), float(org_wait)
        scope, wait = ("principal", principal_wait) if principal_wait >= org_wait else ("org", org_wait)
        raise RateLimited(f"too many requests from this {'token or user' if scope == 'principal' else 'org'}; "
                          f"retry in {wait:.1f} s", {"scope": scope, "retry_after_seconds": round(wait, 3)},
                          retry_after=wait)


_AUTH_FAILURES = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate, burst, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local event = nil
if mode == 'failed' then
  tokens = math.max(0, tokens - 1)
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
  event = 'failed'
elseif tokens < 1 then
  event = 'refused'
end
local wait = tokens >= 1 and 0 or (1 - tokens) / rate
local counts = {}
if event then
  redis.call('HINCRBY', KEYS[2], event, 1)
  redis.call('PEXPIRE', KEYS[2], 7 * 86400 * 1000)
  if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[4]) then
    counts = redis.call('HGETALL', KEYS[2])
    redis.call('DEL', KEYS[2])
  end
end
return {tostring(wait), counts}
"""


class AuthFailureLimiter:
    """Failed authentications per client address (the peer address of the connection)."""

    def __init__(self, redis: Redis, settings: Settings):
        self._script = redis.register_script(_AUTH_FAILURES)
        self.settings = settings

    def _run(self, address: str, mode: str) -> tuple[float, dict[str, int] | None]:
        s = self.settings
        keys = [f"sqlrs:authfail:bucket:{address}", f"sqlrs:authfail:unaudited:{address}",
                f"sqlrs:authfail:window:{address}"]
        wait, flat = self._script(keys=keys, args=[s.rate_limit_auth_failures_per_address,
                                                   s.rate_limit_auth_failures_burst, mode,
                                                   max(1, round(s.audit_auth_failures_window_seconds * 1000))])
        counts = {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        return float(wait), counts or None

    def admit(self, address: str) -> dict[str, int] | None:
        """Before authentication: RateLimited while the address's bucket is empty (the refusal is
        counted). Returns the counts an audit row is due for now, if one is."""
        wait, counts = self._run(address, "check")
        if wait <= 0:
            return None
        raise AuthFailuresLimited(wait, counts)

    def failed(self, address: str) -> dict[str, int] | None:
        """After a failed authentication: take a token; the counts an audit row is due for now, if one is."""
        return self._run(address, "failed")[1]


class AuthFailuresLimited(RateLimited):
    def __init__(self, wait: float, audit_counts: dict[str, int] | None):
        super().__init__(f"too many failed authentications from this address; retry in {wait:.1f} s",
                         {"scope": "address", "retry_after_seconds": round(wait, 3)}, retry_after=wait)
        self.audit_counts = audit_counts


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
