"""The auditor's read-only HTTP API (JSON, described at /openapi.json) and page (/), over the audit store.

GET only. There is no authentication: `lienthong audit serve` binds 127.0.0.1 unless told otherwise, and a
deployment that serves other machines puts it behind a proxy that authenticates auditors.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from cryptography import x509
from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import AwareDatetime
from sqlalchemy.exc import OperationalError

from lienthong.audit.events import AuditEventType
from lienthong.audit.page import render_page
from lienthong.audit.queries import EventFilter, agency_figures, find, overdue
from lienthong.audit.store import AuditStore
from lienthong.audit.timeline import build_timeline
from lienthong.audit.views import (
    ChainView,
    ErrorView,
    EventsView,
    FiguresView,
    OverdueListView,
    TimelineView,
    chain_view,
    event_view,
    figures_view,
    overdue_view,
    timeline_view,
)
from lienthong.codec import SingleObjectCodec
from lienthong.errors import LienthongError, NotFoundError, Reason
from lienthong.notices import StatusCode

AGENCY_CODE = r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$"  # Decision 20/2020, as lienthong.agencies checks it
MAX_EVENTS = 10_000
_HEADERS = {
    # The page needs nothing from anywhere: no scripts, no external styles, images or fonts.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

AgencyCode = Annotated[str | None, Query(pattern=AGENCY_CODE, description="Agency code, e.g. 000.00.00.G22")]
Hours = Annotated[float, Query(gt=0, le=24 * 366, description="Deadline in hours after delivery")]


class StoreHandle:
    """The app's one audit store: opened at startup (or at first use when run without a lifespan), closed at
    shutdown."""

    def __init__(self, open_store: Callable[[], AuditStore]) -> None:
        self._open = open_store
        self._store: AuditStore | None = None
        self._lock = threading.Lock()

    def get(self) -> AuditStore:
        with self._lock:
            if self._store is None:
                self._store = self._open()
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class ChainCheck:
    """Verifies the chain, one check at a time; the page reuses a result younger than `max_age_s`, since a
    full check reads every row (about 14 s per million rows)."""

    def __init__(self, stores: StoreHandle, ca_certificate: x509.Certificate, codec: SingleObjectCodec,
                 max_age_s: float) -> None:
        self._stores, self._ca, self._codec, self._max_age_s = stores, ca_certificate, codec, max_age_s
        self._lock = threading.Lock()
        self._last: tuple[float, ChainView] | None = None

    def view(self, *, fresh: bool) -> ChainView:
        with self._lock:
            if not fresh and self._last is not None and time.monotonic() - self._last[0] < self._max_age_s:
                return self._last[1]
            started = time.monotonic()
            report = self._stores.get().verify(self._ca, self._codec)
            view = chain_view(report, dt.datetime.now(dt.UTC), time.monotonic() - started)
            self._last = (started, view)
            return view


def _error(status: int, reason: Reason | str, detail: str) -> JSONResponse:
    return JSONResponse(ErrorView(reason=str(reason), detail=detail).model_dump(), status_code=status)


def create_app(open_store: Callable[[], AuditStore], names: dict[str, str], ca_certificate: x509.Certificate,
               codec: SingleObjectCodec, *, chain_max_age_s: float = 60.0) -> FastAPI:
    """The auditor's app; `names` maps agency codes to the names shown next to them."""
    stores = StoreHandle(open_store)
    chain = ChainCheck(stores, ca_certificate, codec, chain_max_age_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stores.get()  # a wrong database URL stops the server at startup, not at the first request
        try:
            yield
        finally:
            stores.close()

    app = FastAPI(title="lienthong audit API", version="1",
                  description="Read-only answers from the audit store of the lienthong document exchange bus: "
                              "a document's timeline per recipient, audit events, overdue deliveries, per-agency "
                              "figures and the state of the tamper-evident hash chain. Times are ISO 8601 in UTC.",
                  docs_url=None, redoc_url=None,  # the interactive docs load scripts from a CDN
                  openapi_url="/openapi.json", lifespan=lifespan)

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(_HEADERS)
        return response

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, exc.reason, exc.message)

    @app.exception_handler(OperationalError)
    async def database_down(_: Request, exc: OperationalError) -> JSONResponse:
        return _error(503, "database-unavailable", "the audit database does not answer; try again shortly")

    @app.exception_handler(LienthongError)
    async def failed(_: Request, exc: LienthongError) -> JSONResponse:
        return _error(500, exc.reason, exc.message)

    def timeline_of(document_id: str) -> TimelineView | None:
        events = stores.get().events(document_id)
        return timeline_view(build_timeline(document_id, events), names) if events else None

    def overdue_list(hours: float) -> OverdueListView:
        now = dt.datetime.now(dt.UTC)
        return overdue_view(overdue(stores.get(), hours, now), hours, now, names)

    @app.get("/api/documents/{document_id:path}/timeline", response_model=TimelineView, tags=["documents"],
             responses={404: {"model": ErrorView, "description": "The audit store has no event of this document"}})
    def document_timeline(document_id: Annotated[str, Path(
            description="Document id, percent-encoded (it contains '/'), e.g. "
                        "000.00.00.G22%2C2026%2F11%2F24%2C4512%2FVPCP-KSTT")]) -> TimelineView:
        """A document's story per recipient: delivered when, every status with its time and reason, who has not
        answered, and the messages of its story the bus refused."""
        timeline = timeline_of(document_id)
        if timeline is None:
            raise NotFoundError(f"no audit record for document {document_id!r}")
        return timeline

    @app.get("/api/events", response_model=EventsView, tags=["events"])
    def events(document: Annotated[str | None, Query(max_length=300, description="Document id")] = None,
               sender: AgencyCode = None, recipient: AgencyCode = None,
               status: Annotated[StatusCode | None, Query(description="Status code")] = None,
               event: Annotated[AuditEventType | None, Query(description="Event type")] = None,
               since: Annotated[AwareDatetime | None, Query(description="From this time on (ISO 8601 with offset)")]
               = None,
               until: Annotated[AwareDatetime | None, Query(description="Before this time (ISO 8601 with offset)")]
               = None,
               limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 1000) -> EventsView:
        """Audit events matching every given filter, oldest first."""
        found = find(stores.get(), EventFilter(document=document, sender=sender, recipient=recipient,
                                               status=status.value if status else None, event=event,
                                               since=since, until=until, limit=limit + 1))
        return EventsView(count=min(len(found), limit), limit=limit, truncated=len(found) > limit,
                          events=[event_view(e) for e in found[:limit]])

    @app.get("/api/overdue", response_model=OverdueListView, tags=["documents"])
    def overdue_deliveries(hours: Hours = 24.0) -> OverdueListView:
        """Deliveries older than `hours` whose recipient has neither accepted (03) nor rejected (02)."""
        return overdue_list(hours)

    @app.get("/api/agencies/figures", response_model=FiguresView, tags=["agencies"])
    def figures(since: Annotated[AwareDatetime | None, Query(description="Count from this time on (ISO 8601 "
                                                                          "with offset)")] = None) -> FiguresView:
        """Per agency: documents sent, received, accepted and rejected, and the median time to accept."""
        return figures_view(agency_figures(stores.get(), since), since, names)

    @app.get("/api/verify", response_model=ChainView, tags=["chain"])
    def verify() -> ChainView:
        """Recompute the hash chain now and check every signed checkpoint; the first broken row is named."""
        return chain.view(fresh=True)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(document: Annotated[str | None, Query(max_length=300)] = None, hours: Hours = 24.0) -> HTMLResponse:
        document = (document or "").strip() or None
        timeline = timeline_of(document) if document else None
        html = render_page(chain.view(fresh=False), overdue_list(hours), document, timeline)
        return HTMLResponse(html, status_code=404 if document and timeline is None else 200)

    return app
