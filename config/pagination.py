"""Cursor pagination for every list in the API: newest first, `limit` and `cursor` checked."""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from config.errors import ValidationFailed


class NewestFirstPagination(CursorPagination):
    """Page through a queryset newest first; subclasses set `ordering`.

    A cursor that does not decode, or whose position is not a value of the
    ordering field, is a `validation_error` on `cursor`, never a crash.
    """

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        try:
            self.position_field = queryset.model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:
            self.position_field = None
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
            field = getattr(self, "position_field", None)
            if cursor is not None and cursor.position is not None and field is not None:
                field.clean(cursor.position, None)
        except Exception:  # a bad cursor is the client's mistake, whatever broke
            raise ValidationFailed.on("cursor", "This cursor is not valid.") from None
        return cursor

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationFailed.on(
                "limit", f"Give a whole number from 1 to {self.max_page_size}."
            )
        return int(raw)

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})
