"""Fixtures for the value tests."""
