"""Exit statuses of the ``omnichannel`` commands, one meaning each, so scripts can tell the cases apart.

=====  ==============================================================================================
0      success (``omnichannel lag``: every group OK or WARN)
1      an error the message explains: a malformed setting, credentials Kafka refused, a schema not registered,
       a failed step (retrying will not help until something is changed)
2      usage error: an unknown option or a bad argument (click's own status)
3      ``omnichannel lag``: a group is ERR (STALL, STOP or REWIND on a partition)
4      ``omnichannel lag``: a group asked for does not exist (NOTFOUND); wins over 3
75     a service did not answer: Kafka, the registry or Redis unreachable (EX_TEMPFAIL: try again later)
=====  ==============================================================================================
"""

from __future__ import annotations

__all__ = ["ERROR", "GROUP_ERR", "GROUP_NOTFOUND", "OK", "UNAVAILABLE", "USAGE"]

OK = 0
ERROR = 1
USAGE = 2
GROUP_ERR = 3
GROUP_NOTFOUND = 4
#: BSD sysexits' EX_TEMPFAIL, as the worker already uses when Redis or Kafka stay unreachable.
UNAVAILABLE = 75
