"""Grafana dashboards as code and the built-in web page."""
