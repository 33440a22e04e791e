"""The sweep's cadence survives leadership terms: a new term waits out the interval begun, not a new one."""

from jitaccess.controller.sweeper import Cadence


def test_a_new_term_waits_only_for_the_rest_of_the_interval():
    cadence = Cadence(300.0)
    assert cadence.wait_s(1000.0) == 300.0  # the first term: a whole interval
    # The term ends 200 s in and a new one starts 50 s later: 50 s are left, not 300.
    assert cadence.wait_s(1250.0) == 50.0
    assert cadence.wait_s(1400.0) == 0.0  # overdue: at once
    cadence.begin(1400.0)
    assert cadence.wait_s(1400.0) == 300.0
