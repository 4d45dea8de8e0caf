from datetime import UTC, datetime, timedelta

from apikeys.models import APIKey, KeyUsageDay
from apikeys.selectors import usage_report


def test_usage_report_covers_the_page_by_day_and_the_last_day_over_every_visible_key(
    org, make_org, make_key, django_assert_num_queries
):
    today = datetime.now(UTC).date()
    first = today - timedelta(days=6)
    paged, _ = make_key(org, environment="live")
    unpaged, _ = make_key(org, environment="test")
    stranger, _ = make_key(make_org("other"))
    KeyUsageDay.objects.create(organization=org, key=paged, day=first, count=4)
    KeyUsageDay.objects.create(organization=org, key=paged, day=today, count=3)
    KeyUsageDay.objects.create(organization=org, key=unpaged, day=today, count=5)
    KeyUsageDay.objects.create(
        organization=org, key=paged, day=first - timedelta(days=1), count=100
    )
    KeyUsageDay.objects.create(organization=stranger.organization, key=stranger, day=today, count=9)

    with django_assert_num_queries(2):
        report = usage_report(
            organization=org,
            visible=APIKey.objects.filter(organization=org),
            page=[paged],
            first=first,
            last=today,
        )

    assert report.days == [first + timedelta(days=i) for i in range(7)]
    assert report.by_key == {paged.pk: {first: 4, today: 3}}
    assert (report.requests_last_day, report.live_requests_last_day) == (8, 3)
