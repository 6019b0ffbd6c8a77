"""Forwarding to the SIEM: pure renderers (CEF, LEEF 2.0, RFC 5424, ECS, OCSF, HEC envelope), transports
(syslog TCP/TLS/UDP, Splunk HEC with acks, `_bulk`, JSON-lines file) and the delivery loop over the outbox.

See docs/forwarding.md for the configuration and the delivery guarantees.
"""
