"""Rate limits per principal and per org: token buckets in Redis, so every API process (and
every host) shares them. One Lua script checks both buckets and takes a token from each only
when both have one, with Redis's clock, so API hosts with skewed clocks agree."""
from __future__ import annotations

from redis import Redis

from ..errors import RateLimited
from ..settings import Settings
from .auth import Principal

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
