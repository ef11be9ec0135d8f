"""One unit of time for every wait in the tests, scaled by ``SB_TEST_TIME_FACTOR`` on slow
machines. Tests wait *up to* multiples of it; none asserts how long anything took."""

import os

UNIT = 1.0 * float(os.environ.get("SB_TEST_TIME_FACTOR", "1"))
