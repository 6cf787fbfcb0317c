"""agent-exporter: systemd services ("agents") as Prometheus metrics via node_exporter's textfile collector."""

__version__ = "0.1.0"
