"""Test doubles that ship with the package (STYLE.md habit 7): a Splunk HEC stub, a fault-injecting proxy."""
