"""Tests of cloudorch.policy."""
