import csv
import io
from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.selectors import events_for_page


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_page_lists_events_and_filters_by_action_and_actor(org, owner, make_key):
    make_key(org, name="Filtered key")
    client = logged_in(owner)
    url = reverse("audit-log", kwargs={"slug": org.slug})
    shown = "<code>{}</code>".format
    html = client.get(url).content.decode()
    assert shown("org.created") in html and shown("api_key.created") in html
    only_keys = client.get(url, {"action": "api_key."}).content.decode()
    assert shown("api_key.created") in only_keys and shown("org.created") not in only_keys
    by_owner = client.get(url, {"actor": owner.email}).content.decode()
    assert shown("org.created") in by_owner and shown("api_key.created") not in by_owner


def test_date_range_and_its_error(org, owner):
    client = logged_in(owner)
    url = reverse("audit-log", kwargs={"slug": org.slug})
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert "No events match" in client.get(url, {"since": tomorrow}).content.decode()
    today = timezone.now().date().isoformat()
    response = client.get(url, {"since": tomorrow, "until": today})
    assert "on or after the start date" in response.content.decode()


def test_pages_of_fifty(org, owner, make_key):
    for i in range(50):
        make_key(org, name=f"k{i}")
    client = logged_in(owner)
    url = reverse("audit-log", kwargs={"slug": org.slug})
    first = client.get(url).content.decode()
    assert "Page 1 of 2" in first and "Older" in first
    assert "Page 2 of 2" in client.get(url, {"page": 2}).content.decode()


def test_csv_export_holds_the_filtered_events_and_defuses_formulas(org, owner, make_key):
    make_key(org, name="=HYPERLINK(1)")
    url = reverse("audit-export", kwargs={"slug": org.slug})
    response = logged_in(owner).get(url, {"action": "api_key.created"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["api_key.created"]
    assert rows[0]["target_label"].startswith("'=")


def test_export_is_404_to_outsiders(org, make_user):
    url = reverse("audit-export", kwargs={"slug": org.slug})
    assert logged_in(make_user()).get(url).status_code == 404


def test_selector_never_crosses_organisations(org, make_org):
    other = make_org()
    assert set(events_for_page(organization=org).values_list("organization", flat=True)) == {org.pk}
    assert events_for_page(organization=other).count() == 2


def test_a_date_at_the_end_of_the_calendar_is_a_form_error_not_a_crash(org, owner):
    """`until` ends at the next day's start: 9999-12-31 has none (it was an OverflowError)."""
    client = logged_in(owner)
    client.raise_request_exception = False
    url = reverse("audit-log", kwargs={"slug": org.slug})
    response = client.get(url, {"until": "9999-12-31"})
    assert response.status_code == 200
    assert response.context["form"].errors["until"]
    assert "9999-12-30" in response.content.decode()
    assert client.get(url, {"until": "9999-12-30", "since": "0001-01-01"}).status_code == 200


def test_the_export_refuses_filters_with_errors_instead_of_exporting_everything(org, owner):
    client = logged_in(owner)
    client.raise_request_exception = False
    url = reverse("audit-export", kwargs={"slug": org.slug})
    for params in ({"until": "9999-12-31"}, {"since": "2030-01-02", "until": "2030-01-01"}):
        response = client.get(url, params)
        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/html")
        assert response.context["form"].errors["until"]
    assert client.get(url, {"until": "9999-12-30"}).status_code == 200
