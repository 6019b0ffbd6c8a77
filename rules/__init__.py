"""Weightwarden rules as package data: formats/*.yar (YARA) and detections/*.yml."""
