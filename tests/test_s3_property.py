"""Property tests on the object store: random request sequences through ParquetStore on
a real SeaweedFS, each answer equal to the uncached call, no range fetched twice, and a
second store instance (another machine) reading everything back without a call."""

from __future__ import annotations

import uuid

import pandas as pd
from adv_providers import Bars
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_adversarial import CHANGES, ONE_SEASON, REALISTIC, T, cache, check, day

from rangememo import ParquetStore


@settings(
    max_examples=12,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shape=st.sampled_from([s for s in REALISTIC if s != ONE_SEASON]),
    change=st.sampled_from(CHANGES),
    requests=st.lists(
        st.tuples(st.integers(0, 16), st.sampled_from([0, 1, 3, 10]), st.sampled_from([0, 16])),
        min_size=1,
        max_size=5,
    ),
)
def test_random_requests_on_s3_match_uncached_and_reopen(s3_bucket_url, shape, change, requests):
    url = f"{s3_bucket_url}/ex-{uuid.uuid4().hex[:8]}"  # a fresh store per example
    row_zone, tod, out_tz, bounds_tz, weekends = shape
    provider = Bars(row_zone, tod, out_tz, weekends=weekends)
    cached = cache(provider, ParquetStore(url))
    base = T(change) - pd.Timedelta("8D")
    asked = []
    for first, length, hours in requests:
        start = day(base + pd.Timedelta(days=first), bounds_tz)
        end = day(base + pd.Timedelta(days=first + length), bounds_tz, hours)
        check(cached, provider, start, end)
        asked.append((start, end))
    assert not provider.duplicates()
    calls = len(provider.calls)
    again = cache(provider, ParquetStore(url))  # another machine, the same cache
    for start, end in asked:
        check(again, provider, start, end)
    assert len(provider.calls) == calls
