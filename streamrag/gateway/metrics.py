"""The gateway's own Prometheus metrics (served on its /metrics beside the client library's defaults).

Label values are bounded: routes are the app's, variants the configured experiments', and tenant names appear
only when STREAMRAG_GATEWAY_METRICS_TENANT_LABELS allows it (else "-"), so no request grows a series."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("streamrag_gateway_requests_total", "HTTP requests by route and status", ["route", "status"])
ROUND_TRIP = Histogram("streamrag_gateway_round_trip_seconds", "Query sent to final answer received, by route and "
                       "A/B variant (experiment/variant; empty: none)", ["route", "variant"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
FEEDBACK = Counter("streamrag_feedback_total", "Feedback received, by tenant, scale, rating and A/B variant",
                   ["tenant", "scale", "rating", "variant"])
VARIANT_REQUESTS = Counter("streamrag_gateway_variant_requests_total", "Queries sent with an A/B variant's options",
                           ["experiment", "variant"])
RATE_LIMITED = Counter("streamrag_gateway_rate_limited_total", "Requests refused by the tenant rate limit", ["tenant"])
TIMEOUTS = Counter("streamrag_gateway_timeouts_total", "Queries whose answer did not arrive in time", ["route"])
HIDDEN = "-"


def tenant_label(tenant: str, shown: bool) -> str:
    """The tenant as a label value: its name only where the settings allow tenant names in metrics."""
    return tenant if shown else HIDDEN
