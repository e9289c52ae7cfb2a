"""Many Redis writes as one script call: the commands go as one JSON argument, run atomically by :data:`APPLY_OPS`.

Why: redis-py packs each command and parses each reply in Python (~20 µs a command); a batch's few hundred to
few thousand writes cost more there than in Redis. orjson packs the list of commands in C and Redis answers once.
Every key is declared in ``KEYS`` (Redis Cluster routes by them; the project's keys share one slot there). The
values (records of a few KB) go as ARGV of their own, not inside the JSON: escaped there, they made Redis's JSON
decoder the commit's largest cost (~36 ms of Redis per batch of 500 events, during which the worker waits).

:data:`FENCED_APPLY_OPS` runs the same commands only if the keys a reader saw still hold what it saw
(:meth:`RedisOps.expect`, :meth:`RedisOps.expect_members`): an optimistic commit in one atomic call, without
WATCH (whose cost in Redis 7.0 grows with the square of the keys watched) or MULTI/EXEC round trips.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import orjson

__all__ = ["APPLY_OPS", "FENCED_APPLY_OPS", "RedisOps"]

#: ARGV[1] is a JSON array holding, per command, its name, key count, argument count, then the positions of its
#: keys in KEYS and of its arguments in ARGV (the arguments themselves are ARGV[2] onwards, as sent).
APPLY_OPS = """
local ops = cjson.decode(ARGV[1])
local i = 1
while i <= #ops do
  local nkeys, nargs = ops[i + 1], ops[i + 2]
  local call = {ops[i]}
  for k = 1, nkeys do call[#call + 1] = KEYS[ops[i + 2 + k]] end
  for a = 1, nargs do call[#call + 1] = ARGV[ops[i + 2 + nkeys + a]] end
  redis.call(unpack(call))
  i = i + 3 + nkeys + nargs
end
return 1
"""

#: The last ARGV is the fence, JSON ``[[key positions], [expected values or ""], [[set key position, [members]],
#: ...]]``: if any key holds something else ("" stands for "no such key") or a set's members differ, nothing is
#: written and the call returns 0. The commands' own arguments keep their positions (ARGV[2] onwards). The keys
#: are read with one MGET per chunk: a call from Lua costs more than the read itself.
FENCED_APPLY_OPS = (
    """
local fence = cjson.decode(ARGV[#ARGV])
local positions, expected = fence[1], fence[2]
for first = 1, #positions, 500 do
  local last = math.min(first + 499, #positions)
  local names = {}
  for n = first, last do names[#names + 1] = KEYS[positions[n]] end
  local found = redis.call('MGET', unpack(names))
  for n = first, last do
    if (found[n - first + 1] or '') ~= expected[n] then return 0 end
  end
end
for _, f in ipairs(fence[3]) do
  local key, members = KEYS[f[1]], f[2]
  if redis.call('SCARD', key) ~= #members then return 0 end
  for _, m in ipairs(members) do
    if redis.call('SISMEMBER', key, m) == 0 then return 0 end
  end
end
"""
    + APPLY_OPS
)

#: Lua's unpack() takes a few thousand values at most: a big set, hash or log goes in several commands.
_CHUNK = 500


class RedisOps:
    """The commands for one :data:`APPLY_OPS` call (method names as redis-py's)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.ops: list[str | int] = []
        self._values: list[str] = []
        self._position: dict[str, int] = {}
        self._expected_keys: list[int] = []  # key positions, and what each must hold ("": no such key)
        self._expected: list[str] = []
        self._expected_sets: list[list[int | list[str]]] = []  # [key position, sorted members]

    def __bool__(self) -> bool:
        return bool(self.ops)

    @property
    def args(self) -> list[str]:
        return [orjson.dumps(self.ops).decode(), *self._values]

    @property
    def fenced_args(self) -> list[str]:
        """The arguments of :data:`FENCED_APPLY_OPS`: :attr:`args`, then the fence."""
        return [*self.args, orjson.dumps([self._expected_keys, self._expected, self._expected_sets]).decode()]

    def expect(self, key: str, value: str | None) -> None:
        """Write only if ``key`` still holds ``value`` (None: no such key; values are never empty strings)."""
        self._expected_keys.append(self._key(key))
        self._expected.append(value or "")

    def expect_members(self, key: str, members: Collection[str]) -> None:
        """Write only if the set ``key`` still holds exactly ``members`` (none: no such key)."""
        self._expected_sets.append([self._key(key), sorted(members)])

    def _key(self, key: str) -> int:
        position = self._position.get(key)
        if position is None:
            self.keys.append(key)
            position = self._position[key] = len(self.keys)
        return position

    def _add(self, command: str, keys: Sequence[str], args: Sequence[str]) -> None:
        positions = [self._key(key) for key in keys]
        first = len(self._values) + 2  # ARGV[1] is the JSON
        self._values += args
        self.ops += [command, len(keys), len(args), *positions, *range(first, first + len(args))]

    def set(self, key: str, value: str) -> None:
        self._add("SET", [key], [value])

    def delete(self, *keys: str) -> None:
        self._add("DEL", keys, [])

    def _chunked(self, command: str, key: str, args: Sequence[str], step: int = _CHUNK) -> None:
        for start in range(0, len(args), step):
            self._add(command, [key], args[start : start + step])

    def sadd(self, key: str, *members: str) -> None:
        self._chunked("SADD", key, members)

    def srem(self, key: str, *members: str) -> None:
        self._chunked("SREM", key, members)

    def zadd(self, key: str, member: str, score: int) -> None:
        self._add("ZADD", [key], [str(score), member])

    def zrem(self, key: str, *members: str) -> None:
        self._chunked("ZREM", key, members)

    def hset(self, key: str, mapping: Mapping[str, str]) -> None:
        self._chunked("HSET", key, [x for pair in mapping.items() for x in pair], 2 * _CHUNK)

    def hdel(self, key: str, *fields: str) -> None:
        self._chunked("HDEL", key, fields)

    def publish(self, channel: str, message: str) -> None:
        self._add("PUBLISH", [], [channel, message])
