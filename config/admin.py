"""What every Keyward admin shares: changelists take only the lookups their filters offer."""

from __future__ import annotations

from typing import Any

from django.contrib.admin import SimpleListFilter
from django.contrib.admin.widgets import url_params_from_lookup_dict
from django.db.models.constants import LOOKUP_SEP


class OfferedLookupsOnly:
    """A ModelAdmin mixin refusing changelist lookups on fields the page offers no filter for.

    Django lets a changelist URL filter on any of the model's own fields, so
    `?secret_hash__startswith=ab` would turn the key list into an oracle on stored
    hashes, one character at a time. Here a lookup must start at a field of
    `list_filter` or `date_hierarchy` (or be a raw-id popup's `limit_choices_to`);
    anything else is refused with Django's 400 (DisallowedModelAdminLookup).
    """

    def lookup_allowed(self, lookup: str, value: Any, request: Any = None) -> bool:
        if not self._offered_lookup(lookup, value, request):
            return False
        return super().lookup_allowed(lookup, value, request)

    def _offered_lookup(self, lookup: str, value: Any, request: Any) -> bool:
        for fk_lookup in self.model._meta.related_fkey_lookups:
            if callable(fk_lookup):
                fk_lookup = fk_lookup()
            if (lookup, value) in url_params_from_lookup_dict(fk_lookup).items():
                return True
        return lookup.split(LOOKUP_SEP, 1)[0] in self._offered_roots(request)

    def _offered_roots(self, request: Any) -> set[str]:
        roots = {self.date_hierarchy} if self.date_hierarchy else set()
        for item in self.get_list_filter(request):
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                roots.add(item.parameter_name)
            else:
                field = item[0] if isinstance(item, list | tuple) else item
                roots.add(field.split(LOOKUP_SEP, 1)[0])
        return roots
