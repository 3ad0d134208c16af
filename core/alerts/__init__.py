"""Alerts: VOEvent/JSON parsing and the NATS JetStream listener that starts flow runs."""

from svomflow.alerts.messages import Alert, AlertFormatError, parse_alert

__all__ = ["Alert", "AlertFormatError", "parse_alert"]
