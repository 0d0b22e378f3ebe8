"""Grafana dashboards as code (grafana-foundation-sdk, Grafana 11.6 build), provisioning and a
small httpx client. The SDK is an optional extra: `pip install -e .[dashboards]`."""
