"""Former home of the ANAF client's clocks: the one clock is `spvhub_common.clock`; this module only re-exports it
for importers not yet switched."""
from __future__ import annotations

from spvhub_common.clock import (
    BUCHAREST,
    Clock,
    ManualClock,
    SystemClock,
    local_date,
    local_midnight,
    next_local_midnight,
)

__all__ = ["BUCHAREST", "Clock", "ManualClock", "SystemClock", "local_date", "local_midnight", "next_local_midnight"]
