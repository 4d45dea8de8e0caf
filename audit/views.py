"""The audit log page: filters, pages and a CSV export of what the filters select."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from typing import Any

from django import forms
from django.core.paginator import Paginator
from django.core.validators import MaxValueValidator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.generic import TemplateView, View

from audit.selectors import actions_seen, events_for_page
from orgs.mixins import OrgPageMixin
from orgs.roles import Permission

PAGE_SIZE = 50
CSV_COLUMNS = (
    "occurred_at",
    "action",
    "actor_type",
    "actor_id",
    "actor_label",
    "target_type",
    "target_id",
    "target_label",
    "ip",
    "user_agent",
    "request_id",
    "changes",
)


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(label="Action", required=False)
    actor = forms.CharField(
        label="Actor",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "Email, key name or id"}),
    )
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        # The filter ends at the next day's start, which must exist.
        validators=[MaxValueValidator(date.max - timedelta(days=1))],
    )
    target = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, actions: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        groups = sorted({a.split(".")[0] + "." for a in actions if "." in a})
        self.fields["action"].choices = [
            ("", "All actions"),
            *[(g, f"{g}* (all)") for g in groups],
            *[(a, a) for a in actions],
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "Choose a date on or after the start date.")
        return cleaned


def _csv_cell(value: Any) -> str:
    """Return a cell no spreadsheet will run as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


class AuditPageMixin(OrgPageMixin):
    required_permissions = (Permission.READ_AUDIT_LOG,)
    section = "audit"

    def filter_form(self) -> AuditFilterForm:
        return AuditFilterForm(
            self.request.GET or None, actions=actions_seen(organization=self.organization)
        )

    def filtered(self, form: AuditFilterForm):
        criteria = form.cleaned_data if form.is_bound and form.is_valid() else {}
        return events_for_page(
            organization=self.organization,
            action=criteria.get("action") or "",
            actor=(criteria.get("actor") or "").strip(),
            target=(criteria.get("target") or "").strip(),
            since=criteria.get("since"),
            until=criteria.get("until"),
        )


class AuditLogView(AuditPageMixin, TemplateView):
    template_name = "audit/audit_log.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = self.filter_form()
        paginator = Paginator(self.filtered(form), PAGE_SIZE)
        page = paginator.get_page(self.request.GET.get("page"))
        query = self.request.GET.copy()
        query.pop("page", None)
        context.update(
            form=form,
            page=page,
            events=[
                {"event": e, "changes": json.dumps(e.changes, sort_keys=True)[:300]}
                for e in page.object_list
            ],
            query=query.urlencode(),
            filtered=any(v for k, v in self.request.GET.items() if k != "page"),
        )
        return context


class AuditExportView(AuditPageMixin, View):
    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = self.filter_form()
        if form.is_bound and not form.is_valid():
            # Never export more than was asked for: show the filters and their errors.
            response = AuditLogView.as_view()(request, *args, **kwargs)
            response.status_code = 400
            return response
        events = self.filtered(form)
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow(CSV_COLUMNS)
            for e in events.iterator(chunk_size=500):
                yield writer.writerow(
                    [
                        _csv_cell(e.occurred_at.isoformat()),
                        _csv_cell(e.action),
                        _csv_cell(e.actor_type),
                        _csv_cell(e.actor_id),
                        _csv_cell(e.actor_label),
                        _csv_cell(e.target_type),
                        _csv_cell(e.target_id),
                        _csv_cell(e.target_label),
                        _csv_cell(e.ip),
                        _csv_cell(e.user_agent),
                        _csv_cell(e.request_id),
                        _csv_cell(json.dumps(e.changes, sort_keys=True)),
                    ]
                )

        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{self.organization.slug}-audit-{stamp}.csv"'
        )
        response["Cache-Control"] = "no-store"
        return response
