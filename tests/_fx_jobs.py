"""Fixtures for the jobs tests."""
