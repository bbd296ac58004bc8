"""Prometheus scrape configuration, recording and alerting rules for the router stack."""
