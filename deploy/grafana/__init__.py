"""Grafana dashboards (generated from Python) and provisioning for the router stack."""
