import json
import logging

from opentelemetry import trace

from services.common.logs import JsonFormatter


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("points.test", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_log_line_carries_trace_id_of_current_span() -> None:
    formatter = JsonFormatter("ledger")
    with trace.get_tracer(__name__).start_as_current_span("work") as span:
        line = json.loads(formatter.format(_record("credited", user_id="u1")))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
    assert line["service"] == "ledger"
    assert line["msg"] == "credited"
    assert line["user_id"] == "u1"


def test_log_line_without_span_has_no_trace_id() -> None:
    line = json.loads(JsonFormatter("ledger").format(_record("idle")))
    assert "trace_id" not in line
    assert line["level"] == "INFO"
