"""When a cron trigger fires next (pure: cronsim + zoneinfo, no clock of its own).

Local times are the trigger's `timezone:`; cronsim follows cron's rule across DST changes
(a skipped local time fires at the first moment after the gap, a repeated one fires once).
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from kestra_trio.model.workflow import CronTrigger


def next_fire_times(trigger: CronTrigger, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` fire times strictly after `after` (an aware datetime), in UTC."""
    from cronsim import CronSim

    times = CronSim(trigger.expression, after.astimezone(ZoneInfo(trigger.timezone)))
    return [next(times).astimezone(timezone.utc) for _ in range(count)]
