"""Fixtures for the graders tests."""
