"""Helpers shared by test files (and only by them): test files import from here, never from each other."""
