"""Fixtures for the hf tests."""
