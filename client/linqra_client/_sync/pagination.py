# Generated from linqra_client/_async by scripts/client_codegen.py (unasync): do not edit.
"""Pages of a list, and an iterator over every item of every page.

The API answers each list with ``{items, total, limit, offset, next_offset}``;
:class:`AsyncPager` fetches the pages one by one as the iteration needs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pydantic

from linqra_client._base import check_limit, parse

if TYPE_CHECKING:
    from linqra_client._sync.client import Linqra

__all__ = ["Pager", "Page"]

T = TypeVar("T", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page: its ``items``, the ``total`` across pages, and where the next one starts."""

    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class Pager(Generic[T]):
    """Every item of a list, fetched page by page as the iteration goes (``for item in pager``;
    ``async for`` with ``AsyncLinqra``); :meth:`page` for one page, :meth:`all` for a list."""

    def __init__(
        self,
        client: Linqra,
        path: str,
        model: type[T],
        *,
        params: dict[str, Any] | None = None,
        limit: int = 50,
    ) -> None:
        self._client = client
        self._path = path
        self._model = model
        self._params = dict(params or {})
        self.limit = check_limit(limit)

    def page(self, offset: int = 0) -> Page[T]:
        """The page that starts at ``offset``."""
        response = self._client.request(
            "GET", self._path, params={**self._params, "limit": self.limit, "offset": offset}
        )
        body = response.json()
        # the API's own lists of a few items (``ItemList``) have no paging fields
        items = [parse(self._model, item) for item in body["items"]]
        return Page(
            items=items,
            total=int(body.get("total", len(items))),
            limit=int(body.get("limit", self.limit)),
            offset=int(body.get("offset", offset)),
            next_offset=body.get("next_offset"),
        )

    def __iter__(self) -> Iterator[T]:
        offset: int | None = 0
        while offset is not None:
            page = self.page(offset)
            for item in page.items:
                yield item
            offset = page.next_offset

    def all(self, *, max_items: int | None = None) -> list[T]:
        """Every item (or the first ``max_items``) as a list."""
        items: list[T] = []
        for item in self:
            if max_items is not None and len(items) >= max_items:
                break
            items.append(item)
        return items
