"""Fixtures for the api tests."""
