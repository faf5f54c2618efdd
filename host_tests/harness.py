"""Run scenarios into a column-addressable trace and judge it on the plant's truth.

The invariants are the safety requirements of docs/requirements.md written as checks over a
trace (tools/invariants.py: the existing ones and issue 12's delivery, no false fault
and no jolt); they look at `true_ua` (the plant's current), never at what the firmware
measured. They hold in every mode: in pulsed mode `true_ua` is the average over the step
(what the trip, slew and contact rules are about) and the on-phase peak is checked
against the ceiling on its own. The runner and the trace are tools/trace_run.py.
"""

import scenario
from tools.invariants import (PEAK_TOL_UA, check_all, check_contact_loss,  # noqa: F401
                              check_hard_cap, check_off_after_trip, check_peak_ceiling,
                              check_polarity_flips, check_slew, check_trip_ceiling)
from tools.trace_run import COL, DT_S, Trace, run  # noqa: F401


def profile_of(scn):
    return scenario.profile_from(scn.get("profile", {}))
