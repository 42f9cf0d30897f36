"""Intake: parse untrusted XML safely, identify its schema set, validate, extract routing keys."""
